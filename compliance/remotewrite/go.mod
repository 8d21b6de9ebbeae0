module github.com/myelindb/myelin/compliance/remotewrite

go 1.26.8
