"""The control plane: specs (KServe's InferenceService and InferenceGraph), their store, the reconciler, backends."""
