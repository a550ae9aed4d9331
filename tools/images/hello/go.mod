module tms-stack/tools/images/hello

go 1.21
