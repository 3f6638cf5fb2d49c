-- Each deal's lifecycle events up to {as_of}, in (at, seq) order, with the stage each one puts
-- the deal in: `opened.stage`, `stage_moved.to`, `requalified.stage` or, without one, the stage
-- the deal closed in (the last stage named before). What the ledger's rules guarantee and this
-- table does not check: one `opened` first, no move of a closed deal, requalification only of a
-- lost or disqualified deal.
CREATE OR REPLACE TEMP VIEW lifecycle AS
WITH steps AS (
    SELECT deal, seq, "at", type, currency, amount,
           CASE type WHEN 'opened' THEN stage WHEN 'stage_moved' THEN "to" WHEN 'requalified' THEN stage END
               AS named
    FROM events
    WHERE type IN ('opened', 'stage_moved', 'won', 'lost', 'disqualified', 'requalified')
      AND "at" <= TIMESTAMPTZ '{as_of}'
)
SELECT *,
       coalesce(named, last_value(named IGNORE NULLS) OVER earlier) AS stage_now,
       lead("at") OVER by_deal AS next_at
FROM steps
WINDOW by_deal AS (PARTITION BY deal ORDER BY "at", seq),
       earlier AS (PARTITION BY deal ORDER BY "at", seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);
