-- wrk script for bench/rest_iris.sh: every request is the same 1-row Open Inference Protocol (V2)
-- JSON infer request for the iris model (one FP32 tensor of shape [1, 4]).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}'
