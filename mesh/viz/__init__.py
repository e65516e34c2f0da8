"""``isthmus viz``: Linkerd viz's stat, authz, edges, tap and top without Prometheus.

Sans-IO cores: ``scrape`` (metric text), ``window`` (rates and percentiles over
two scrapes), ``stat``/``edges`` (rows), ``render`` (tables, JSON), ``tapview``
(tap events, top). I/O: ``fetch`` (API server, pod proxy, Prometheus) and
``tap_client`` (mTLS tap streams); ``cli`` ties them together.
"""
