//! Host bindings generated from `wit/icedb.wit`, one per world, sharing the
//! types of `icedb:plugin/types`.

pub(crate) mod format_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "format-row-plugin",
        additional_derives: [PartialEq],
    });
}

pub(crate) mod partition_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "partition-plugin",
        with: { "icedb:plugin/types": super::format_world::icedb::plugin::types },
    });
}

pub(crate) use format_world::icedb::plugin::types::PluginError as GuestError;
pub use format_world::icedb::plugin::types::{Batch, Column, Value};

impl Batch {
    /// The column named `name`, if the batch has one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}
