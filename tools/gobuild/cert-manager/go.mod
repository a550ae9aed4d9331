module tms-stack/tools/gobuild/cert-manager

go 1.24

// Only the module's files are used (the Certificate CRD under deploy/crds/, which the tests
// validate rendered Certificates against); nothing is compiled from it.
require github.com/cert-manager/cert-manager v1.21.2
