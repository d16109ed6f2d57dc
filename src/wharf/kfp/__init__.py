"""Kubeflow Pipelines components for Wharf (`wharf.kfp.components`, examples in `wharf.kfp.pipelines`); only those
two modules import `kfp` (the `kfp` extra), the work each component does lives in plain modules beside them."""
