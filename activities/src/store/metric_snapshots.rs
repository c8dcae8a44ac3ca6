//! Every process's counters, a snapshot a minute: what the console's overview sums over the
//! deployment's API and worker processes.

use super::Store;
use super::entities::metric_snapshot;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::BTreeSet;

/// One process's counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSnapshot {
    /// The process: an id it made up when it started.
    pub process: String,
    /// When the process started (its counters counted from zero then).
    pub started: DateTime<Utc>,
    /// When the snapshot was taken.
    pub taken: DateTime<Utc>,
    /// The counters, as the overview writes and reads them (JSON).
    pub counters: String,
}

impl From<metric_snapshot::Model> for MetricSnapshot {
    fn from(m: metric_snapshot::Model) -> Self {
        Self { process: m.process, started: m.started, taken: m.taken, counters: m.counters }
    }
}

/// What a window needs of one process that lived in it: the snapshot the window counts it
/// from, and its newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessWindow {
    /// The newest snapshot taken at or before the window's start; when there is none, the
    /// process's oldest (taken after the start).
    pub from: MetricSnapshot,
    /// The process's newest snapshot.
    pub newest: MetricSnapshot,
}

impl Store {
    /// Keeps a snapshot.
    pub async fn keep_metric_snapshot(&self, s: &MetricSnapshot) -> Result<(), DbErr> {
        metric_snapshot::Entity::insert(metric_snapshot::ActiveModel {
            process: Set(s.process.clone()),
            taken: Set(s.taken),
            started: Set(s.started),
            counters: Set(s.counters.clone()),
        })
        .exec(&*self.db)
        .await?;
        Ok(())
    }

    /// Forgets the snapshots taken before `before`; how many.
    pub async fn prune_metric_snapshots(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        Ok(metric_snapshot::Entity::delete_many()
            .filter(metric_snapshot::Column::Taken.lt(before))
            .exec(&*self.db)
            .await?
            .rows_affected)
    }

    /// When the oldest snapshot kept (of any process) was taken.
    pub async fn oldest_metric_snapshot(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        metric_snapshot::Entity::find()
            .select_only()
            .column(metric_snapshot::Column::Taken)
            .order_by_asc(metric_snapshot::Column::Taken)
            .into_tuple::<DateTime<Utc>>()
            .one(&*self.db)
            .await
    }

    async fn metric_snapshot(
        &self,
        process: &str,
        at_or_before: Option<DateTime<Utc>>,
        newest: bool,
    ) -> Result<Option<MetricSnapshot>, DbErr> {
        let mut q =
            metric_snapshot::Entity::find().filter(metric_snapshot::Column::Process.eq(process));
        if let Some(at) = at_or_before {
            q = q.filter(metric_snapshot::Column::Taken.lte(at));
        }
        q = if newest {
            q.order_by_desc(metric_snapshot::Column::Taken)
        } else {
            q.order_by_asc(metric_snapshot::Column::Taken)
        };
        Ok(q.one(&*self.db).await?.map(Into::into))
    }

    /// Each process that took a snapshot at or after `start`, with what a window from `start`
    /// needs of it (two or three reads of the primary key per process), in the order of their
    /// ids.
    pub async fn metric_window(&self, start: DateTime<Utc>) -> Result<Vec<ProcessWindow>, DbErr> {
        // The window's range of the (taken, process) index, deduplicated here: a DISTINCT lets
        // SQLite's planner prefer a scan of the whole primary key instead.
        let processes: BTreeSet<String> = metric_snapshot::Entity::find()
            .select_only()
            .column(metric_snapshot::Column::Process)
            .filter(metric_snapshot::Column::Taken.gte(start))
            .into_tuple::<String>()
            .all(&*self.db)
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(processes.len());
        for p in processes {
            let Some(newest) = self.metric_snapshot(&p, None, true).await? else { continue };
            let from = match self.metric_snapshot(&p, Some(start), true).await? {
                Some(before) => before,
                None => match self.metric_snapshot(&p, None, false).await? {
                    Some(oldest) => oldest,
                    None => continue,
                },
            };
            out.push(ProcessWindow { from, newest });
        }
        Ok(out)
    }
}
