"""The Kubernetes controller: Services of type LoadBalancer get addresses from the core's allocator."""
