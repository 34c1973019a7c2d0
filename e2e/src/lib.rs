//! End-to-end rig and sample apps (not built yet).
