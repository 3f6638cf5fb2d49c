-- `report pipeline --as-of {as_of}`: every deal's status, stage and latest amount at that
-- moment; open deals by currency and stage with the amount and the amount times the stage's
-- probability (rounded half away from zero to the cent, once per row); closed deals counted by
-- status. Every recorded event is known (the ledger's default `--known-at` is now).
WITH status AS (
    SELECT deal,
           arg_max(type, {{'at': "at", 'seq': seq}}) AS last_type,
           arg_max(stage_now, {{'at': "at", 'seq': seq}}) AS stage,
           any_value(currency) FILTER (WHERE type = 'opened') AS currency
    FROM lifecycle
    GROUP BY deal
),
amounts AS (
    SELECT deal, arg_max(amount, {{'at': "at", 'seq': seq}}) AS amount
    FROM events
    WHERE type IN ('opened', 'amount_changed') AND "at" <= TIMESTAMPTZ '{as_of}'
    GROUP BY deal
),
probability(stage, p) AS (
    VALUES ('prospecting', 0.10), ('qualifying', 0.25), ('quote', 0.50), ('closing', 0.80)
)
SELECT s.currency,
       CASE WHEN s.last_type IN ('opened', 'stage_moved', 'requalified') THEN s.stage ELSE s.last_type END AS stage,
       count(*) AS deals,
       sum(CAST(a.amount AS DECIMAL(18, 2))) AS amount,
       round(sum(CAST(a.amount AS DECIMAL(18, 2))) * any_value(p.p), 2) AS weighted_amount
FROM status s
JOIN amounts a USING (deal)
LEFT JOIN probability p ON p.stage = s.stage
GROUP BY ALL
ORDER BY ALL;
