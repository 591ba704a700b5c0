"""A local etcd cluster started by kvnet (tests, the lab, benchmarks): `kvnet.etcd.cluster`."""
