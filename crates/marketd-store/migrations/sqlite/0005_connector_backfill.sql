-- Trades a connector recovered from its venue's REST history to fill
-- trade-id gaps; 0 for statuses stored before it.
ALTER TABLE connector_status ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;
