//! sea-orm entities. These are storage shapes only: never a request or response body.

/// An order as accepted by the API.
pub mod order {
    use sea_orm::entity::prelude::*;
    use varsel_workflows::domain::{EmailContentType, NotificationChannel, OrderStatus};
    use varsel_workflows::order::{OrderKind, OrderType};

    /// One row per order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        /// Order id (UUID text); also the workflow id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The creator org (tenant).
        pub creator: String,
        /// The sender's own reference.
        pub senders_reference: Option<String>,
        /// When to send, UTC.
        pub requested_send_time: DateTimeUtc,
        /// When the order was accepted, UTC.
        pub created: DateTimeUtc,
        /// The channel or channel preference.
        pub notification_channel: NotificationChannel,
        /// Whether KRR reservations are overridden.
        pub ignore_reservation: bool,
        /// Altinn resource id.
        pub resource_id: Option<String>,
        /// XACML action used with `resource_id`.
        pub resource_action: Option<String>,
        /// URL answering `{"sendNotification": bool}`.
        pub condition_endpoint: Option<String>,
        /// Email sender address; `None` uses the configured default.
        pub email_from: Option<String>,
        /// Email subject template.
        pub email_subject: Option<String>,
        /// Email body template.
        #[sea_orm(column_type = "Text", nullable)]
        pub email_body: Option<String>,
        /// `Plain` or `Html`.
        pub email_content_type: Option<EmailContentType>,
        /// A composed email's attachments, a JSON array of `Attachment`; `None` when it has none.
        #[sea_orm(column_type = "Text", nullable)]
        pub email_attachments: Option<String>,
        /// SMS sender id; `None` uses the configured default.
        pub sms_sender: Option<String>,
        /// SMS body template.
        #[sea_orm(column_type = "Text", nullable)]
        pub sms_body: Option<String>,
        /// Which endpoint accepted the order.
        pub order_kind: OrderKind,
        /// Where the order stands.
        pub status: OrderStatus,
        /// When `status` last changed.
        pub status_changed: DateTimeUtc,
        /// How many recipients the order has.
        pub recipient_count: i32,
        /// Whether its workflow has been started (transactional outbox flag).
        pub workflow_started: bool,
        /// The order chain (newer API) this order belongs to.
        pub chain_id: Option<String>,
        /// Its role in its chain (newer API); `None` for orders of the v1 API.
        pub order_type: Option<OrderType>,
        /// SMS may go at any hour (`sendingTimePolicy: Anytime`), not only in the sending window.
        pub sms_anytime: bool,
        /// Dialogporten dialog the order belongs to.
        pub dialog_id: Option<String>,
        /// Dialogporten transmission the order belongs to.
        pub transmission_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A recipient exactly as submitted.
pub mod order_recipient {
    use sea_orm::entity::prelude::*;

    /// One row per submitted recipient.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_recipients")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        /// Position in the submitted list.
        #[sea_orm(primary_key, auto_increment = false)]
        pub idx: i32,
        /// Explicit email address.
        pub email: Option<String>,
        /// Explicit mobile number (normalised).
        pub mobile: Option<String>,
        /// Organisation number to look up.
        pub org_no: Option<String>,
        /// National identity number to look up.
        pub nin: Option<String>,
        /// Stale contact details may be used (`useStaleContactInformation`).
        pub allow_stale: bool,
        /// A self-identified user's external identity to look up.
        pub external_identity: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One message to one address on one channel.
pub mod notification {
    use sea_orm::entity::prelude::*;
    use varsel_workflows::domain::{Channel, NotificationStatus};

    /// One row per notification.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        /// Notification id (UUID text).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The order.
        pub order_id: String,
        /// Its channel.
        pub channel: Channel,
        /// Which submitted recipient this came from.
        pub recipient_idx: i32,
        /// Organisation number of the recipient, if any.
        pub org_no: Option<String>,
        /// National identity number of the recipient, if any.
        pub nin: Option<String>,
        /// Email address or mobile number; empty for failed placeholders.
        pub address: String,
        /// Rendered subject when the template had keywords.
        pub subject: Option<String>,
        /// Rendered body when the template had keywords.
        #[sea_orm(column_type = "Text", nullable)]
        pub body: Option<String>,
        /// Where it stands.
        pub status: NotificationStatus,
        /// When `status` last changed.
        pub status_changed: DateTimeUtc,
        /// Provider detail for the status (SMTP reply, gateway text).
        #[sea_orm(column_type = "Text", nullable)]
        pub status_reason: Option<String>,
        /// Provider message reference.
        pub provider_ref: Option<String>,
        /// Send attempts so far.
        pub attempts: i32,
        /// After this time an unfinished notification is given up (time-to-live).
        pub expiry: DateTimeUtc,
        /// SMS segments the text takes (SMS only).
        pub segments: Option<i32>,
        /// The last delivery report received, as the provider sent it.
        #[sea_orm(column_type = "Text", nullable)]
        pub delivery_report: Option<String>,
        /// Whether the provider that took it reports delivery, so `Succeeded`/`Accepted` is not
        /// yet final.
        pub awaits_report: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A person in the embedded contact register (KRR).
pub mod contact_person {
    use sea_orm::entity::prelude::*;

    /// One row per person.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_persons")]
    pub struct Model {
        /// National identity number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub nin: String,
        /// Full name.
        pub name: Option<String>,
        /// Email address.
        pub email: Option<String>,
        /// Mobile number.
        pub mobile: Option<String>,
        /// Reserved against digital notifications.
        pub reserved: bool,
        /// When the contact details were last confirmed or changed at their source.
        pub updated_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An organisation in the embedded contact register, with its notification addresses.
pub mod contact_organization {
    use sea_orm::entity::prelude::*;

    /// One row per organisation.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_organizations")]
    pub struct Model {
        /// Organisation number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_no: String,
        /// Registered name.
        pub name: Option<String>,
        /// Notification email addresses (JSON array of strings).
        pub emails: Json,
        /// Notification mobile numbers (JSON array of strings).
        pub mobiles: Json,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What the SMS simulator accepted: one row per notification, so a second send is visible.
pub mod simulated_sms {
    use sea_orm::entity::prelude::*;

    /// One row per accepted simulated SMS.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "simulated_sms")]
    pub struct Model {
        /// Simulator message reference.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The notification it carries.
        pub notification_id: String,
        /// Destination number.
        pub recipient: String,
        /// Sender id as sent.
        pub sender: String,
        /// Text as sent.
        #[sea_orm(column_type = "Text")]
        pub body: String,
        /// When the simulator accepted it.
        pub accepted_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A delivery report that matched no notification, or arrived after its notification expired.
pub mod dead_report {
    use sea_orm::entity::prelude::*;
    use varsel_workflows::domain::{Channel, NotificationStatus};

    /// One row per unmatched report.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dead_reports")]
    pub struct Model {
        /// Report id (UUID text).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The channel it reports on.
        pub channel: Channel,
        /// The notification id or provider reference the report named.
        pub reference: String,
        /// The status the report maps to.
        pub status: NotificationStatus,
        /// The report as received.
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        /// `UNKNOWN_REFERENCE` or `NOTIFICATION_EXPIRED`.
        pub reason: String,
        /// When it arrived.
        pub received_at: DateTimeUtc,
        /// When an operator re-applied it successfully.
        pub applied_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How many notifications of an order are in one channel and status, kept by the database as
/// they change (migration m0008's triggers): never written by the store itself.
pub mod order_count {
    use sea_orm::entity::prelude::*;
    use varsel_workflows::domain::{Channel, NotificationStatus};

    /// One row per (order, channel, status, awaiting a report).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_counts")]
    pub struct Model {
        /// The order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        /// The channel.
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel: Channel,
        /// The status.
        #[sea_orm(primary_key, auto_increment = false)]
        pub status: NotificationStatus,
        /// Whether the provider is still expected to report on them.
        #[sea_orm(primary_key, auto_increment = false)]
        pub awaits_report: bool,
        /// How many notifications (0 once they all moved on).
        pub n: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One status change of a notification, for the order's timeline.
pub mod notification_event {
    use sea_orm::entity::prelude::*;
    use varsel_workflows::domain::NotificationStatus;

    /// One row per change.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notification_events")]
    pub struct Model {
        /// Event id (UUID text).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The order.
        pub order_id: String,
        /// The notification.
        pub notification_id: String,
        /// The status it moved to (or was reported as).
        pub status: NotificationStatus,
        /// `created`, `sending`, `provider`, `report`, `ttl` or `redrive`.
        pub source: String,
        /// The provider's words, the report, or what did not change.
        #[sea_orm(column_type = "Text", nullable)]
        pub detail: Option<String>,
        /// When.
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An order chain of the newer API: created once per creator and idempotency id.
pub mod order_chain {
    use sea_orm::entity::prelude::*;

    /// One row per chain.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_chains")]
    pub struct Model {
        /// Chain id (`notificationOrderId`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The creator org.
        pub creator: String,
        /// The client's idempotency id, unique per creator.
        pub idempotency_id: String,
        /// SHA-256 of the request as received, to tell a repeat from a different request.
        pub request_hash: String,
        /// The answer given when the chain was created (JSON), repeated for a repeat.
        #[sea_orm(column_type = "Text")]
        pub response: String,
        /// When it was created.
        pub created: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The status feed: one entry per finished order, numbered in commit order.
pub mod status_feed {
    use sea_orm::entity::prelude::*;

    /// One row per finished order.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "status_feed")]
    pub struct Model {
        /// Sequence number, the feed's cursor.
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The order.
        #[sea_orm(unique)]
        pub order_id: String,
        /// Its creator.
        pub creator: String,
        /// When the entry was written.
        pub created: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A creator's webhook endpoint: where its orders' events are posted.
pub mod webhook_endpoint {
    use sea_orm::entity::prelude::*;

    /// One row per endpoint.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        /// Endpoint id (`ep_` and a UUID).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The creator org it belongs to.
        pub creator: String,
        /// Where events are posted.
        #[sea_orm(column_type = "Text")]
        pub url: String,
        /// The creator's own words.
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        /// The event types it receives, comma-separated.
        #[sea_orm(column_type = "Text")]
        pub events: String,
        /// The signing secret (`whsec_` and base64).
        pub secret: String,
        /// The secret before the last rotation, still signed with until `previous_secret_until`.
        pub previous_secret: Option<String>,
        /// Until when the previous secret still signs.
        pub previous_secret_until: Option<DateTimeUtc>,
        /// Whether events are delivered.
        pub enabled: bool,
        /// Why it was disabled.
        #[sea_orm(column_type = "Text", nullable)]
        pub disabled_reason: Option<String>,
        /// When registered.
        pub created: DateTimeUtc,
        /// When last changed.
        pub updated: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One event for one endpoint: the webhook message, delivered until accepted.
pub mod webhook_message {
    use sea_orm::entity::prelude::*;

    /// One row per event and endpoint.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_messages")]
    pub struct Model {
        /// Sequence number: one order's events are delivered in this order.
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// The message id (`msg_` and a UUID): the `webhook-id` header, the same on every
        /// attempt, so a receiver can drop a repeat.
        #[sea_orm(unique)]
        pub id: String,
        /// The endpoint.
        pub endpoint_id: String,
        /// The order it is about.
        pub order_id: String,
        /// `order.completed`, `notification.final`, …
        pub event_type: String,
        /// The JSON body as posted.
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        /// When the event happened.
        pub created: DateTimeUtc,
        /// `Pending`, `Delivered` or `Failed`.
        pub status: String,
        /// Attempts made.
        pub attempts: i32,
        /// When the last attempt was made.
        pub last_attempt: Option<DateTimeUtc>,
        /// The HTTP status of the last attempt, when one came.
        pub last_status_code: Option<i32>,
        /// What went wrong at the last attempt.
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        /// When the endpoint accepted it.
        pub delivered: Option<DateTimeUtc>,
        /// Whether the pair's workflow has been told (outbox flag).
        pub dispatched: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One attempt at delivering a webhook message.
pub mod webhook_attempt {
    use sea_orm::entity::prelude::*;

    /// One row per attempt.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_attempts")]
    pub struct Model {
        /// Attempt id (UUID text, time-ordered).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The message.
        pub message_id: String,
        /// The endpoint.
        pub endpoint_id: String,
        /// The order.
        pub order_id: String,
        /// The message's event type.
        pub event_type: String,
        /// Where it was posted.
        #[sea_orm(column_type = "Text")]
        pub url: String,
        /// 1 for the first attempt at the message.
        pub attempt: i32,
        /// When.
        pub at: DateTimeUtc,
        /// The HTTP status answered, when one came.
        pub status_code: Option<i32>,
        /// What went wrong; `None` when accepted.
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        /// How long the attempt took, milliseconds.
        pub duration_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a person did to an order (a cancel, a redrive), and who: the order's timeline shows it.
pub mod order_action {
    use sea_orm::entity::prelude::*;

    /// One row per action.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_actions")]
    pub struct Model {
        /// Action id (UUID text, time-ordered).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The order.
        pub order_id: String,
        /// When.
        pub at: DateTimeUtc,
        /// Who: the creator org, the operator token's subject, or the command's user.
        pub actor: String,
        /// `cancel` or `redrive`.
        pub action: String,
        /// What it did (for a redrive, how many notifications it sends again).
        #[sea_orm(column_type = "Text", nullable)]
        pub detail: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One process's counters at one moment, for the console's overview (m0016).
pub mod metric_snapshot {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "metric_snapshots")]
    pub struct Model {
        /// The process: an id it made up when it started.
        #[sea_orm(primary_key, auto_increment = false)]
        pub process: String,
        /// When the snapshot was taken.
        #[sea_orm(primary_key, auto_increment = false)]
        pub taken: DateTimeUtc,
        /// When the process started: its counters counted from zero then.
        pub started: DateTimeUtc,
        /// The counters (JSON, as the overview reads them).
        #[sea_orm(column_type = "Text")]
        pub counters: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
