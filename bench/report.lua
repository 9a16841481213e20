-- wrk script for GET /healthz: no request logic, only the machine-readable summary.
-- Prints one line the bench script parses: BENCH rps=... p50_us=... p99_us=... p999_us=... non2xx=... errors=...
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d errors=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
      e.status, e.connect + e.read + e.write + e.timeout))
end
