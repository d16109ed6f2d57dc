"""The Kubernetes API conventions over the control plane's store: discovery, OpenAPI, objects, patches, watches,
Status errors and server-side printing, so that kubectl and KServe's SDK work against `wharf up`."""
