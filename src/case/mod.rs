//! Case files: the YAML model, loading, and validation with file:line:col diagnostics.

mod check;
mod entries;
mod given;
mod inject;
mod load;
mod model;
mod placeholder;
mod program;
mod schema;
mod sockopt;
mod validate;
mod when;
mod workload;

pub use crate::vocab::{CaseDuration, CaseErrors, Comparison, Family, Rate, Role, SourceError};
pub use check::{
    Check, Expectation, OutputStream, PacketFields, PacketSelect, RowTest, SocketField,
    SocketFilter, TsecrRule,
};
pub use entries::Entries;
pub use given::LoadOptions;
pub use inject::{Base, Number, SeqBase, SeqNumber, TsBase, TsNumber};
pub use load::{
    Case, case_id, discover, expected_refusal, load_case, load_case_source, load_case_with,
};
pub use model::*;
pub use placeholder::{
    Placeholder, Segment, fill as fill_placeholders, parse as parse_placeholders,
};
pub use program::{Exec, Ready, Scalar, Vars, default_exec_timeout};
pub use schema::{schema, schema_text};
pub use sockopt::{OptionName, OptionValue, SocketOption, SocketOptions, ValueKind, ValueWanted};
pub use validate::SysctlSetting;
pub use when::{FEATURES, KernelVersion, Platform, When};
pub use workload::{
    MIN_INTERVAL, OneOrMany, SeriesAgg, SeriesMetric, Window, Workload, WorkloadClose,
};
