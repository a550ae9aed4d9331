module tms-stack/tools/gobuild/prometheus-operator

go 1.24

// Only the module's files are used (the CRD manifests under example/prometheus-operator-crd/);
// nothing is compiled from it.
require github.com/prometheus-operator/prometheus-operator v0.85.0
