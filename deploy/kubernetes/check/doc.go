// Package check holds the tests of the Kubernetes manifests in deploy/kubernetes: every
// manifest decodes strictly into the real Kubernetes API types (unknown fields rejected),
// and what they say of the node (its port, the health service names, its flags and
// environment variables, the seed form) matches the node binary. It is a module of its own,
// so that the Kubernetes API types never become dependencies of the product.
package check
