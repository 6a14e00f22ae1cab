//! Harnesses that run the real peers of Helios for its tests and benchmarks.
//!
//! [`OpaServer`] starts a real `opa` (built from its Go module by `scripts/install-tools.sh`) on
//! free loopback ports with a bundle written by the test, waits until it is healthy, and kills it
//! when dropped.
//!
//! Which `opa` runs: `$HELIOS_OPA_BIN` when set, else `<workspace>/.tools/bin/opa` (or
//! `$HELIOS_TOOLS_BIN/opa`), else the one
//! `scripts/install-tools.sh opa` builds there on first use (once; a minute or two).
//!
//! [`ControlPlane`] runs etcd and a real kube-apiserver (built from the `k8s.io/kubernetes` Go
//! module) on loopback with a static admin token and an audit log; [`KubeApi`] is its REST API.
//!
//! [`Registry`] runs the real CNCF distribution registry (anonymous, or TLS + htpasswd) and
//! drives `crane` to push images into it, both built the same way (`HELIOS_REGISTRY_BIN`,
//! `HELIOS_CRANE_BIN` override).
//!
//! [`RedisServer`] runs Debian's `redis-server` on a free loopback port without persistence, and
//! can kill and restart it (`HELIOS_REDIS_BIN` overrides).

mod kube;
mod kube_api;
mod opa;
mod redis;
mod registry;
mod token;
mod tools;

pub use kube::{ADMIN_TOKEN, ControlPlane, etcd_binary, kube_apiserver_binary};
pub use kube_api::{Answer, KubeApi, cert_manager_crd};
pub use opa::{OpaServer, OpaServerBuilder, StartError, free_port, opa_binary, workspace_root};
pub use redis::{RedisServer, redis_server_binary};
pub use registry::{Registry, RegistryBuilder, crane_binary, registry_binary};
pub use tools::helm_binary;
