"""QEfficient's ``QEfficient.exporter`` import path (the legacy ``QEfficient.export`` function)."""
