//! Delivery reports: applying a provider's report to its notification, and the dead reports that
//! matched nothing.

use super::Store;
use super::entities::{dead_report, notification};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use varsel_workflows::domain::{Channel, NotificationStatus};

/// Which notification a delivery report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// Our notification id (carried in the report URL or as the email Message-ID).
    Notification(String),
    /// The provider's message reference.
    ProviderRef(String),
}

impl ReportTarget {
    pub(super) fn text(&self) -> &str {
        match self {
            Self::Notification(s) | Self::ProviderRef(s) => s,
        }
    }
}

/// A delivery report, mapped to a status.
#[derive(Debug, Clone)]
pub struct Report {
    /// Which notification.
    pub target: ReportTarget,
    /// The status it reports.
    pub status: NotificationStatus,
    /// The provider's words, for the status description.
    pub reason: Option<String>,
    /// The provider's message reference, if the report carries one.
    pub provider_ref: Option<String>,
    /// The report as received.
    pub raw: String,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The notification moved; `open_left` notifications of its order still wait.
    Applied {
        /// The order.
        order_id: String,
        /// Open notifications left in the order.
        open_left: u64,
        /// Time since the notification last changed status (sent or accepted) until this report.
        lag: Option<std::time::Duration>,
    },
    /// Nothing changed: the notification was already at or past this status (a repeat).
    Unchanged {
        /// The order.
        order_id: String,
    },
    /// No notification matches; kept as a dead report.
    Dead {
        /// The dead report's id.
        id: String,
        /// Why.
        reason: &'static str,
    },
}

/// A delivery report that matched no notification, or arrived after its notification expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadReport {
    /// Its id.
    pub id: String,
    /// The channel it reports on.
    pub channel: Channel,
    /// The notification id or provider reference it named.
    pub reference: String,
    /// The status it maps to.
    pub status: NotificationStatus,
    /// The report as received.
    pub payload: String,
    /// `UNKNOWN_REFERENCE` or `NOTIFICATION_EXPIRED`.
    pub reason: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When an operator re-applied it successfully.
    pub applied_at: Option<DateTime<Utc>>,
}

impl From<dead_report::Model> for DeadReport {
    fn from(m: dead_report::Model) -> Self {
        Self {
            id: m.id,
            channel: m.channel,
            reference: m.reference,
            status: m.status,
            payload: m.payload,
            reason: m.reason,
            received_at: m.received_at,
            applied_at: m.applied_at,
        }
    }
}

impl Store {
    /// Applies a delivery report. A report only moves a notification forward (a repeat, or a
    /// late "accepted" after "delivered", changes nothing); a report for no notification, or for
    /// one already given up at its time-to-live, is kept as a dead report.
    pub async fn apply_report(
        &self,
        report: &Report,
        channel: Channel,
    ) -> Result<ApplyOutcome, DbErr> {
        self.apply_report_inner(report, channel, true).await
    }

    /// Re-applies a dead report: like [`Store::apply_report`], but an unmatched report is not
    /// stored again (the caller still holds it).
    pub async fn reapply_report(
        &self,
        report: &Report,
        channel: Channel,
    ) -> Result<ApplyOutcome, DbErr> {
        self.apply_report_inner(report, channel, false).await
    }

    pub(super) async fn apply_report_inner(
        &self,
        report: &Report,
        channel: Channel,
        keep_dead: bool,
    ) -> Result<ApplyOutcome, DbErr> {
        // The update is guarded by the status read; when the sender (or another report) moved
        // the row in between, read again instead of losing this report.
        for _ in 0..8 {
            if let Some(outcome) = self.try_apply_report(report, channel, keep_dead).await? {
                return Ok(outcome);
            }
        }
        Err(DbErr::Custom("delivery report kept conflicting with concurrent updates".into()))
    }

    pub(super) async fn try_apply_report(
        &self,
        report: &Report,
        channel: Channel,
        keep_dead: bool,
    ) -> Result<Option<ApplyOutcome>, DbErr> {
        let found = match &report.target {
            ReportTarget::Notification(id) => {
                notification::Entity::find_by_id(id.clone()).one(&*self.db).await?
            }
            ReportTarget::ProviderRef(r) => {
                notification::Entity::find()
                    .filter(notification::Column::ProviderRef.eq(r.clone()))
                    .one(&*self.db)
                    .await?
            }
        }
        .filter(|n| n.channel == channel);
        let Some(n) = found else {
            return self
                .dead_report(report, channel, "UNKNOWN_REFERENCE", keep_dead)
                .await
                .map(Some);
        };
        let current = n.status;
        if current == NotificationStatus::ttl_for(channel) {
            return self
                .dead_report(report, channel, "NOTIFICATION_EXPIRED", keep_dead)
                .await
                .map(Some);
        }
        // The raw report is kept even when it changes nothing.
        let mut update = notification::Entity::update_many()
            .col_expr(notification::Column::DeliveryReport, Expr::value(report.raw.clone()))
            .filter(notification::Column::Id.eq(n.id.clone()));
        if let Some(r) = &report.provider_ref
            && n.provider_ref.is_none()
        {
            update = update.col_expr(notification::Column::ProviderRef, Expr::value(r.clone()));
        }
        // A notification is still movable while it is unsent or sent-and-awaiting a report (a
        // provider that does not report may still send one: it is applied all the same).
        let moves = current.is_open() && report.status.rank() > current.rank();
        if !moves {
            update.exec(&*self.db).await?;
            Self::log_events(
                &*self.db,
                vec![(
                    n.id.clone(),
                    n.order_id.clone(),
                    report.status,
                    "report",
                    // The report's words are kept: a delay notice says why it is still open.
                    Some(match &report.reason {
                        Some(reason) => format!("no change: already {} ({reason})", n.status),
                        None => format!("no change: already {}", n.status),
                    }),
                )],
            )
            .await?;
            return Ok(Some(ApplyOutcome::Unchanged { order_id: n.order_id }));
        }
        // A report without words keeps the note recorded at sending (e.g. a sender-policy note).
        if let Some(reason) = &report.reason {
            update =
                update.col_expr(notification::Column::StatusReason, Expr::value(reason.clone()));
        }
        let res = update
            .col_expr(notification::Column::Status, Expr::value(report.status))
            .col_expr(notification::Column::StatusChanged, Expr::value(Utc::now()))
            // Guard against a concurrent report: only from the status we read.
            .filter(notification::Column::Status.eq(n.status))
            .exec(&*self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        Self::log_events(
            &*self.db,
            vec![(
                n.id.clone(),
                n.order_id.clone(),
                report.status,
                "report",
                report.reason.clone(),
            )],
        )
        .await?;
        let open_left = self.count_open(&n.order_id).await?;
        let lag = (Utc::now() - n.status_changed).to_std().ok();
        Ok(Some(ApplyOutcome::Applied { order_id: n.order_id, open_left, lag }))
    }

    pub(super) async fn dead_report(
        &self,
        report: &Report,
        channel: Channel,
        reason: &'static str,
        keep: bool,
    ) -> Result<ApplyOutcome, DbErr> {
        let id = uuid::Uuid::new_v4().to_string();
        if !keep {
            return Ok(ApplyOutcome::Dead { id, reason });
        }
        dead_report::Entity::insert(dead_report::ActiveModel {
            id: Set(id.clone()),
            channel: Set(channel),
            reference: Set(report.target.text().to_owned()),
            status: Set(report.status),
            payload: Set(report.raw.clone()),
            reason: Set(reason.to_owned()),
            received_at: Set(Utc::now()),
            applied_at: Set(None),
        })
        .exec_without_returning(&*self.db)
        .await?;
        Ok(ApplyOutcome::Dead { id, reason })
    }

    /// Dead reports not yet re-applied, oldest first.
    pub async fn dead_reports(&self, limit: u64) -> Result<Vec<DeadReport>, DbErr> {
        let rows = dead_report::Entity::find()
            .filter(dead_report::Column::AppliedAt.is_null())
            .order_by_asc(dead_report::Column::ReceivedAt)
            .limit(limit)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(DeadReport::from).collect())
    }

    /// One dead report.
    pub async fn dead_report_by_id(&self, id: &str) -> Result<Option<DeadReport>, DbErr> {
        let row = dead_report::Entity::find_by_id(id.to_owned()).one(&*self.db).await?;
        Ok(row.map(DeadReport::from))
    }

    /// Marks a dead report as re-applied.
    pub async fn mark_dead_report_applied(&self, id: &str) -> Result<(), DbErr> {
        dead_report::Entity::update_many()
            .col_expr(dead_report::Column::AppliedAt, Expr::value(Utc::now()))
            .filter(dead_report::Column::Id.eq(id))
            .exec(&*self.db)
            .await?;
        Ok(())
    }
}
