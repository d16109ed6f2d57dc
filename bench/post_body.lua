-- wrk script for bench/batching.sh: every request POSTs the same V2 JSON body, read from the file that
-- BENCH_BODY names (written by bench/request_body.py).
local file = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a")
file:close()
