-- `report time-in-stage --as-of {as_of}`: a visit starts when the deal enters a stage (opened,
-- stage_moved, requalified) and ends at its next lifecycle event; statistics over the visits
-- ended by then, in days; `open` counts the visits not ended. p90 is the nearest rank,
-- ceil(0.9 n); the median of an even count is the mean of the two middle values.
WITH visits AS (
    SELECT stage_now AS stage,
           (epoch_us(next_at) - epoch_us("at")) / 86400000000.0 AS days
    FROM lifecycle
    WHERE type IN ('opened', 'stage_moved', 'requalified')
)
SELECT stage,
       count(days) AS completed,
       round(avg(days), 6) AS mean_days,
       median(days) AS median_days,
       list_sort(list(days) FILTER (WHERE days IS NOT NULL))[CAST(ceil(0.9 * count(days)) AS BIGINT)] AS p90_days,
       max(days) AS max_days,
       count(*) FILTER (WHERE days IS NULL) AS open
FROM visits
GROUP BY stage
ORDER BY stage;
