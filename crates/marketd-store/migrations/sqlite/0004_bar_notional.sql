-- Σ price × size of a bar's ticks, for its VWAP; NULL for bars that were not
-- folded from ticks (a provider's own bars) and for bars stored before it.
ALTER TABLE bars ADD COLUMN notional NUMERIC;
ALTER TABLE bars ADD COLUMN notional_exact TEXT;
