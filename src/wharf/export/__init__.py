"""What a KServe cluster needs to run Wharf's services: `kserve` turns stored resources into KServe's objects,
`runtime` describes Wharf's model server as a ClusterServingRuntime and the Dockerfile of its image."""
