"""Open Inference Protocol over gRPC: the proto, its generated modules and the codec.

The generated modules are committed; after editing grpc_predict_v2.proto run `python -m wharf.protocol.grpc.generate`.
"""
