//! meshproxy: the data plane (not built yet).
