//! Summaries of barcodes.
