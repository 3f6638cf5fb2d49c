-- The analyst's shortcut: the JSON Lines export into one table, as it comes. `seq` is the line's
-- place in the file (DuckDB keeps insertion order by default), the ledger's order of arrival.
-- The columns are every field of the event contract (docs/events.md), named: DuckDB's sampling
-- of the first lines would miss a field that first appears late.
CREATE OR REPLACE TABLE events AS
SELECT row_number() OVER () AS seq, *
FROM read_json('{events}', format = 'newline_delimited', columns = {{
    deal: 'VARCHAR', type: 'VARCHAR', "at": 'TIMESTAMPTZ', recorded_at: 'TIMESTAMPTZ',
    owner: 'VARCHAR', amount: 'DOUBLE', currency: 'VARCHAR', stage: 'VARCHAR', close_date: 'DATE',
    name: 'VARCHAR', source_id: 'VARCHAR', actor: 'VARCHAR', channel: 'VARCHAR',
    direction: 'VARCHAR', contact: 'VARCHAR', minutes: 'BIGINT', reason: 'VARCHAR',
    field: 'VARCHAR', value: 'JSON', "to": 'VARCHAR', note: 'VARCHAR'
}});
