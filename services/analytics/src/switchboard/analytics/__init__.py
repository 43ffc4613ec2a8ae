"""Analytics: rollups of every stream, query API, dashboard, Prometheus metrics, conversions."""
