//! kv isolation (written once the test plugin has its kv modes).
