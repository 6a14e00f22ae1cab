//! Links the addon against Node-API the way napi-rs expects (undefined symbols resolved at load).

fn main() {
    napi_build::setup();
}
