module tms-stack/tools/images/pause

go 1.21
