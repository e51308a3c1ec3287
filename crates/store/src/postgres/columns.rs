//! Batches as columns: how every multi-row statement of the PostgreSQL store gets its rows.
//!
//! A batch is sent as one array per column (`unnest($1::int8[], $2::text[], ...)`), so one
//! statement writes any number of rows in one round trip. [`columns!`] declares, for a statement,
//! a struct with one `Vec` per column, its `push` of one row, and [`Columns::params`] in the
//! struct's order, which must be the order of the statement's placeholders.
//!
//! Must not: convert values (callers push them as the statement's types, `int8` as `i64`).

use tokio_postgres::types::ToSql;

/// A batch of rows, one array per column.
pub(super) trait Columns {
    /// The arrays, in column order: the statement's parameters.
    fn params(&self) -> Vec<&(dyn ToSql + Sync)>;
    /// How many rows were pushed.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Declares a batch of rows for a statement: `columns! { /// docs  pub(super) struct Name<'a> {
/// first: Type, second: Type } }` makes `Name` with one `Vec<Type>` per column, `Name::push`
/// taking one row's values in that order, and [`Columns`] for it.
macro_rules! columns {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(<$lt:lifetime>)? {
            $($(#[$column_meta:meta])* $column:ident: $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Default)]
        $vis struct $name $(<$lt>)? {
            $($(#[$column_meta])* $column: Vec<$ty>,)+
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            #[allow(
                clippy::too_many_arguments,
                reason = "a row has as many values as its statement has columns"
            )]
            $vis fn push(&mut self, $($column: $ty),+) {
                $(self.$column.push($column);)+
            }
        }

        impl $(<$lt>)? $crate::postgres::columns::Columns for $name $(<$lt>)? {
            fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
                vec![$(&self.$column),+]
            }

            fn len(&self) -> usize {
                // Every column has a value of every row pushed.
                [$(self.$column.len()),+][0]
            }
        }
    };
}

pub(super) use columns;
