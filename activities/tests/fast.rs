//! The fast tier of `activities`: the store on in-memory SQLite and the order activities in the
//! Temporal SDK's activity test environment. Nothing but cargo: no Temporal server, no SMTP
//! server (email goes to lettre's file transport), SMS to the simulator.

use chrono::Utc;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use temporalio_sdk::testing::ActivityEnvironment;
use varsel_activities::events::OrderEvents;
use varsel_activities::metrics::Metrics;
use varsel_activities::providers::attachments::{AttachmentFetcher, AttachmentSettings};
use varsel_activities::providers::condition::ConditionClient;
use varsel_activities::providers::email::{EmailSettings, Mailer};
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_activities::providers::rate::SendRateLimits;
use varsel_activities::providers::sms::{Simulator, SmsRouter};
use varsel_activities::store::CancelOutcome;
use varsel_activities::{OrderActivitiesImpl, Store};
use varsel_workflows::activities::{GenerateBatch, SendBatch};
use varsel_workflows::domain::{
    Channel, EmailContentType, NotificationChannel, NotificationStatus, OrderStatus,
};
use varsel_workflows::order::{
    ChainPlacement, EmailTemplate, NewOrder, Order, OrderKind, OrderType, Recipient, SmsTemplate,
};

/// A store on a fresh in-memory SQLite database, migrated.
async fn memory_store() -> Store {
    let store = Store::connect("sqlite::memory:", 1).await.expect("in-memory SQLite");
    store.migrate().await.expect("migrations");
    store
}

/// No workflow to tell: the activity tests drive the steps themselves.
struct NoWorkflow;

#[async_trait::async_trait]
impl OrderEvents for NoWorkflow {
    async fn reports_final(&self, _order_id: &str) {}
}

/// The activities as a worker builds them, with email written to `outbox` and SMS simulated.
fn activities(store: &Store, outbox: &Path) -> OrderActivitiesImpl {
    let metrics = Metrics::new();
    let events: Arc<dyn OrderEvents> = Arc::new(NoWorkflow);
    OrderActivitiesImpl {
        store: store.clone(),
        contacts: varsel_activities::contacts::ContactSources::embedded(store),
        mailer: Mailer::new(&EmailSettings {
            smtp_url: None,
            default_from: "varsel@example.no".to_owned(),
            outbox_dir: outbox.to_path_buf(),
            pool_size: 1,
            timeout: Duration::from_secs(5),
            bounces: None,
            dsn_notify: false,
            max_message_bytes: 10 * 1024 * 1024,
        })
        .expect("file transport"),
        attachments: AttachmentFetcher::new(
            AttachmentSettings {
                concurrency: 2,
                timeout: Duration::from_secs(5),
                max_message_bytes: 10 * 1024 * 1024,
            },
            OutboundPolicy::default(),
        )
        .expect("attachment fetcher"),
        sms: SmsRouter {
            simulator: Some(Simulator::new(
                store.clone(),
                events,
                metrics.clone(),
                Duration::from_millis(10),
            )),
            gateway: None,
            allow_list: vec![],
        },
        email_reports: false,
        condition: ConditionClient::new(Duration::from_secs(5), OutboundPolicy::default())
            .expect("condition client"),
        default_sms_sender: "varsel".to_owned(),
        send_slots: varsel_activities::order_activities::SendSlots::new(4),
        send_budget: Duration::from_secs(60),
        draining: Default::default(),
        notification_ttl: Duration::from_secs(3600),
        sms_window: None,
        sender_policies: vec![],
        metrics,
        rate_limits: SendRateLimits::new(store.clone(), Default::default()),
        pauses: Default::default(),
    }
}

/// An email order of `ttd` to two addresses and a person the register does not know.
fn email_order(id: &str) -> NewOrder {
    let now = Utc::now();
    let email = |a: &str| Recipient { email: Some(a.to_owned()), ..Default::default() };
    NewOrder {
        order: Order {
            id: id.to_owned(),
            creator: "ttd".to_owned(),
            created: now,
            kind: OrderKind::Orders,
            status: OrderStatus::Registered,
            channel: NotificationChannel::Email,
            requested_send_time: now,
            senders_reference: None,
            resource_id: None,
            resource_action: None,
            ignore_reservation: false,
            condition_endpoint: None,
            email: Some(EmailTemplate {
                from: None,
                subject: "Your case".to_owned(),
                body: "Case 4711 is decided.".to_owned(),
                content_type: EmailContentType::Plain,
                attachments: vec![],
            }),
            sms: None,
            chain: None,
        },
        recipients: vec![
            email("a@example.no"),
            email("b@example.no"),
            Recipient { nin: Some("16069412345".to_owned()), ..Default::default() },
        ],
    }
}

/// A fresh store, an empty outbox and the activities in the SDK's test environment.
async fn environment() -> (Store, tempfile::TempDir, ActivityEnvironment) {
    let store = memory_store().await;
    let outbox = tempfile::tempdir().unwrap();
    let env = ActivityEnvironment::builder_with_default()
        .register_activities(activities(&store, outbox.path()))
        .build();
    (store, outbox, env)
}

fn outbox_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| std::fs::read_to_string(e.path()).unwrap()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test]
async fn an_email_order_runs_through_its_activities_and_nothing_is_sent_twice() {
    let (store, outbox, env) = environment().await;
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_order(email_order(&id)).await.unwrap();

    let start = env.run(OrderActivitiesImpl::start_processing, id.clone()).await.unwrap();
    assert!(start.proceed);
    assert_eq!(start.status, OrderStatus::Processing);
    assert_eq!(start.channels, Some(vec![Channel::Email]));

    let batch = |from_index| GenerateBatch { order_id: id.clone(), from_index, limit: 2 };
    let first = env.run(OrderActivitiesImpl::generate_notifications, batch(0)).await.unwrap();
    assert_eq!(first.next_index, Some(2), "two recipients a batch");
    let second = env.run(OrderActivitiesImpl::generate_notifications, batch(2)).await.unwrap();
    assert_eq!(second.next_index, None);
    // A retried batch creates nothing twice.
    env.run(OrderActivitiesImpl::generate_notifications, batch(2)).await.unwrap();
    assert_eq!(store.notifications(&id).await.unwrap().len(), 3);

    let send = SendBatch { order_id: id.clone(), channel: Channel::Email, limit: 10 };
    let sent = env.run(OrderActivitiesImpl::send_batch, send.clone()).await.unwrap();
    assert_eq!((sent.sent, sent.remaining), (2, 0));
    let mails = outbox_files(outbox.path());
    assert_eq!(mails.len(), 2, "one file a sent email");
    assert!(mails.iter().any(|m| m.contains("To: a@example.no")), "{mails:?}");
    assert!(mails.iter().any(|m| m.contains("To: b@example.no")), "{mails:?}");
    assert!(mails.iter().all(|m| m.contains("Subject: Your case")), "{mails:?}");

    // A retried send batch finds nothing left to send.
    let again = env.run(OrderActivitiesImpl::send_batch, send).await.unwrap();
    assert_eq!((again.sent, again.remaining), (0, 0));
    assert_eq!(outbox_files(outbox.path()).len(), 2, "nothing sent twice");

    let mut statuses: Vec<&str> =
        store.notifications(&id).await.unwrap().into_iter().map(|n| n.status.as_str()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            NotificationStatus::EmailFailedRecipientNotIdentified.as_str(),
            NotificationStatus::EmailSucceeded.as_str(),
            NotificationStatus::EmailSucceeded.as_str(),
        ]
    );
    let settled = env.run(OrderActivitiesImpl::settle_order, id.clone()).await.unwrap();
    assert_eq!(settled.status, OrderStatus::Completed);
}

#[tokio::test]
async fn a_cancelled_order_is_not_processed() {
    let (store, outbox, env) = environment().await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut new = email_order(&id);
    new.order.requested_send_time = Utc::now() + chrono::Duration::hours(2);
    store.insert_order(new).await.unwrap();

    let other = store.cancel_order(&id, Some("nav"), chrono::Duration::minutes(5)).await.unwrap();
    assert!(matches!(other, CancelOutcome::NotFound), "another creator's order is not found");
    let own = store.cancel_order(&id, Some("ttd"), chrono::Duration::minutes(5)).await.unwrap();
    assert!(matches!(own, CancelOutcome::Cancelled(_)), "{own:?}");

    let start = env.run(OrderActivitiesImpl::start_processing, id.clone()).await.unwrap();
    assert!(!start.proceed);
    assert_eq!(start.status, OrderStatus::Cancelled);
    assert!(outbox_files(outbox.path()).is_empty());
}

#[tokio::test]
async fn an_order_is_stored_whole_and_read_back() {
    let store = memory_store().await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut new = email_order(&id);
    new.order.senders_reference = Some("ref-1".to_owned());
    new.order.sms = Some(SmsTemplate { sender: Some("Varsel".to_owned()), body: "Hei".to_owned() });
    new.order.chain = Some(ChainPlacement {
        chain_id: uuid::Uuid::new_v4().to_string(),
        order_type: OrderType::Reminder,
        sms_anytime: true,
        dialog_id: Some("d-1".to_owned()),
        transmission_id: None,
    });
    store.insert_order(new.clone()).await.unwrap();
    // What goes in comes out: every field of the order and its recipients, in order.
    let (stored, recipients) = store.get_order(&id, "ttd").await.unwrap().expect("stored");
    assert_eq!(stored.order, new.order);
    assert_eq!(recipients, new.recipients);
    assert_eq!((stored.recipient_count, stored.workflow_started), (3, false));
    assert_eq!(stored.status_changed, new.order.created);
    assert!(store.get_order(&id, "nav").await.unwrap().is_none(), "another creator's order");
    assert_eq!(store.order_of(&id, "ttd").await.unwrap().map(|o| o.order), Some(new.order));
    let slice = store.recipients_slice(&id, 1, 10).await.unwrap();
    assert_eq!(slice.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(slice[1].1.nin.as_deref(), Some("16069412345"));
    // The same id again is refused, and the first order is unchanged.
    assert!(store.insert_order(email_order(&id)).await.is_err());
    assert_eq!(store.recipients_slice(&id, 0, 10).await.unwrap().len(), 3);
}

/// Every value of every stored enum is written as its one name and read back as itself: the
/// column types the store relies on instead of parsing strings.
#[test]
fn every_stored_name_reads_back_as_itself() {
    use sea_orm::ActiveEnum;
    fn check<E>(all: &[E], name: fn(E) -> &'static str)
    where
        E: ActiveEnum<Value = String> + Copy + PartialEq + std::fmt::Debug,
    {
        for &v in all {
            assert_eq!(v.to_value(), name(v), "{v:?} is stored as its name");
            assert_eq!(E::try_from_value(&v.to_value()).ok(), Some(v), "{v:?} reads back");
        }
        assert!(E::try_from_value(&"Unknown".to_owned()).is_err(), "an unknown name is refused");
    }
    check(NotificationStatus::ALL, NotificationStatus::as_str);
    check(OrderStatus::ALL, OrderStatus::as_str);
    check(NotificationChannel::ALL, NotificationChannel::as_str);
    check(Channel::ALL, Channel::as_str);
    check(EmailContentType::ALL, EmailContentType::as_str);
    check(OrderKind::ALL, OrderKind::as_str);
    check(OrderType::ALL, OrderType::as_str);
}

/// A finished order enters the status feed; entries older than the retention are deleted and
/// younger ones kept.
#[tokio::test]
async fn the_status_feed_keeps_entries_for_their_retention() {
    let store = memory_store().await;
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_order(email_order(&id)).await.unwrap();
    for (from, to) in [
        (OrderStatus::Registered, OrderStatus::Processing),
        (OrderStatus::Processing, OrderStatus::Completed),
    ] {
        assert!(store.transition_order(&id, &[from], to).await.unwrap(), "{from} to {to}");
    }
    let feed = store.status_feed("ttd", 0, 10, false).await.unwrap();
    assert_eq!(feed.iter().map(|e| e.order_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(store.status_feed("nav", 0, 10, false).await.unwrap().is_empty(), "per creator");

    let written = feed[0].created;
    let kept = store.prune_status_feed(written - chrono::Duration::days(1)).await.unwrap();
    assert_eq!(kept, 0, "an entry younger than the retention stays");
    assert_eq!(store.status_feed("ttd", 0, 10, false).await.unwrap().len(), 1);
    let pruned = store.prune_status_feed(written + chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(pruned, 1, "an entry past the retention goes");
    assert!(store.status_feed("ttd", 0, 10, false).await.unwrap().is_empty());
}

mod register {
    //! Loading the embedded contact register: streaming import with bad lines reported by
    //! number, idempotent upserts, and an export that an import reads back as it was.

    use super::memory_store;
    use futures::TryStreamExt;
    use varsel_activities::Store;
    use varsel_activities::contacts::import::{
        BATCH, ContactKind, FileFormat, ImportSummary, LineError, MAX_LINE, import,
    };

    async fn load(
        store: &Store,
        kind: ContactKind,
        format: FileFormat,
        text: &str,
    ) -> ImportSummary {
        let mut seen = Vec::new();
        let summary = import(store, kind, format, std::io::Cursor::new(text.to_owned()), |e| {
            seen.push(e.clone())
        })
        .await
        .expect("the import finishes");
        assert_eq!(seen, summary.errors, "every refused line is passed on as it is found");
        summary
    }

    async fn exported(store: &Store, kind: ContactKind) -> String {
        let chunks: Vec<Vec<u8>> = varsel_activities::contacts::export::export(store.clone(), kind)
            .try_collect()
            .await
            .unwrap();
        String::from_utf8(chunks.concat()).unwrap()
    }

    fn err(line: u64, message: &str) -> LineError {
        LineError { line, message: message.to_owned() }
    }

    #[tokio::test]
    async fn persons_from_ndjson_with_bad_lines_reported_by_number() {
        let store = memory_store().await;
        let file = [
            r#"{"nationalIdentityNumber":"01017012345","name":"Ola","email":"ola@example.no","mobileNumber":"99999999","lastUpdated":"2025-06-01"}"#,
            "",
            r#"{"nationalIdentityNumber":"0101701234"}"#,
            r#"{"nationalIdentityNumber":"02017012345","isReserved":true,"email":"kari@example.no"}"#,
            "not json",
            r#"{"nationalIdentityNumber":"03017012345","mobileNumber":"12345678"}"#,
            r#"{"nationalIdentityNumber":"04017012345","fax":"1"}"#,
            r#"{"nationalIdentityNumber":"01017012345","name":"Ola Nordmann","email":"ola@example.no"}"#,
        ]
        .join("\n");
        let s = load(&store, ContactKind::Persons, FileFormat::Ndjson, &file).await;
        assert_eq!((s.imported, s.rejected), (3, 4), "{s:?}");
        let lines: Vec<u64> = s.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 6, 7], "{s:?}");
        assert_eq!(
            s.errors[0],
            err(3, "nationalIdentityNumber: National identity number must be 11 digits long.")
        );
        assert!(s.errors[1].message.starts_with("not a person entry: "), "{s:?}");
        assert!(s.errors[2].message.starts_with("mobileNumber: not a mobile number"), "{s:?}");
        assert!(s.errors[3].message.contains("unknown field `fax`"), "{s:?}");

        let ola = store.person("01017012345").await.unwrap().unwrap();
        assert_eq!(ola.name.as_deref(), Some("Ola Nordmann"), "the later line wins");
        assert_eq!(ola.mobile, None, "the later line replaces the whole entry");
        assert_eq!(ola.updated_at, None);
        let kari = store.person("02017012345").await.unwrap().unwrap();
        assert!(kari.reserved);
        assert!(
            store.person("03017012345").await.unwrap().is_none(),
            "a refused line stores nothing"
        );
    }

    #[tokio::test]
    async fn persons_and_organizations_from_csv() {
        let store = memory_store().await;
        let persons = "nationalIdentityNumber,name,email,mobileNumber,isReserved,lastUpdated\n\
                       01017012345,Ola,ola@example.no,+4799999999,false,2025-06-01T12:00:00Z\n\
                       02017012345,\"Nordmann, Kari\",,40000001,true,\n\
                       03017012345,Per,per@@example.no,,,\n\
                       04017012345,too,many,fields,false,,x\n\
                       05017012345,Anne,,,maybe,\n";
        let s = load(&store, ContactKind::Persons, FileFormat::Csv, persons).await;
        assert_eq!((s.imported, s.rejected), (2, 3), "{s:?}");
        assert_eq!(s.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [4, 5, 6], "{s:?}");
        assert_eq!(s.errors[0], err(4, "email: Invalid email address format."));
        assert!(s.errors[1].message.starts_with("not a CSV row: "), "{s:?}");
        assert!(s.errors[2].message.starts_with("not a person entry: "), "{s:?}");
        let kari = store.person("02017012345").await.unwrap().unwrap();
        assert_eq!(kari.name.as_deref(), Some("Nordmann, Kari"));
        assert_eq!(kari.mobile.as_deref(), Some("+4740000001"));
        assert!(kari.reserved);

        let orgs = "organizationNumber,name,emailList,mobileNumberList\n\
                    910000000,Bedrift AS,post@bedrift.no;varsel@bedrift.no,40000001\n\
                    91000000,Short,,\n\
                    920000000,Uten adresser,,\n";
        let s = load(&store, ContactKind::Organizations, FileFormat::Csv, orgs).await;
        assert_eq!((s.imported, s.rejected), (2, 1), "{s:?}");
        assert_eq!(
            s.errors,
            [err(3, "organizationNumber: Organization number must be 9 digits long.")]
        );
        let org = store.organization("910000000").await.unwrap().unwrap();
        assert_eq!(org.emails, ["post@bedrift.no", "varsel@bedrift.no"]);
        assert_eq!(org.mobiles, ["+4740000001"]);
        assert!(store.organization("920000000").await.unwrap().unwrap().emails.is_empty());

        let wrong = import(
            &store,
            ContactKind::Persons,
            FileFormat::Csv,
            std::io::Cursor::new("nin,email\n01017012345,a@b.no\n"),
            |_| {},
        )
        .await
        .unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "the CSV header has no nationalIdentityNumber column (it has: nin, email)"
        );
    }

    /// Many batches, a number repeated across batches, an overlong line skipped without being
    /// held, and a second import of the same file leaving the same register.
    #[tokio::test]
    async fn a_large_file_imports_in_batches_and_again_to_the_same_register() {
        let store = memory_store().await;
        let n = BATCH * 2 + 17;
        let mut file = String::new();
        for i in 0..n {
            file.push_str(&format!(
                "{{\"nationalIdentityNumber\":\"{:011}\",\"email\":\"p{i}@example.no\"}}\n",
                10_000_000_000u64 + i as u64
            ));
        }
        file.push_str(&format!("{{\"nationalIdentityNumber\":\"{}\"}}\n", "1".repeat(MAX_LINE)));
        file.push_str(&format!(
            "{{\"nationalIdentityNumber\":\"{:011}\",\"email\":\"last@example.no\"}}\n",
            10_000_000_000u64
        ));
        let s = load(&store, ContactKind::Persons, FileFormat::Ndjson, &file).await;
        assert_eq!((s.imported, s.rejected), (n as u64 + 1, 1), "{:?}", s.errors);
        assert_eq!(s.errors, [err(n as u64 + 1, &format!("longer than {MAX_LINE} bytes"))]);
        let first = store.person("10000000000").await.unwrap().unwrap();
        assert_eq!(first.email.as_deref(), Some("last@example.no"), "the later line wins");

        let before = exported(&store, ContactKind::Persons).await;
        assert_eq!(before.lines().count(), n);
        let again = load(&store, ContactKind::Persons, FileFormat::Ndjson, &file).await;
        assert_eq!(again, s);
        assert_eq!(exported(&store, ContactKind::Persons).await, before, "idempotent");
    }

    #[tokio::test]
    async fn an_export_imports_back_as_it_was() {
        let store = memory_store().await;
        let persons = [
            r#"{"nationalIdentityNumber":"01017012345","name":"Ola","email":"ola@example.no","mobileNumber":"99999999","isReserved":false,"lastUpdated":"2025-06-01T12:00:00Z"}"#,
            r#"{"nationalIdentityNumber":"02017012345","isReserved":true}"#,
        ]
        .join("\n");
        load(&store, ContactKind::Persons, FileFormat::Ndjson, &persons).await;
        let orgs = r#"{"organizationNumber":"910000000","name":"Bedrift AS","emailList":["post@bedrift.no"],"mobileNumberList":["+4740000001"]}"#;
        load(&store, ContactKind::Organizations, FileFormat::Ndjson, orgs).await;

        let copy = memory_store().await;
        for kind in [ContactKind::Persons, ContactKind::Organizations] {
            let out = exported(&store, kind).await;
            let s = load(&copy, kind, FileFormat::Ndjson, &out).await;
            assert_eq!(s.rejected, 0, "{out}");
            assert_eq!(exported(&copy, kind).await, out);
        }
        assert_eq!(
            exported(&store, ContactKind::Persons).await.lines().next().unwrap(),
            r#"{"nationalIdentityNumber":"01017012345","name":"Ola","email":"ola@example.no","mobileNumber":"+4799999999","isReserved":false,"lastUpdated":"2025-06-01T12:00:00+00:00"}"#
        );
        assert!(copy.delete_person("02017012345").await.unwrap());
        assert!(!copy.delete_person("02017012345").await.unwrap());
        assert!(copy.delete_organization("910000000").await.unwrap());
        assert_eq!(exported(&copy, ContactKind::Organizations).await, "");
    }
}

/// The counts the database keeps as notifications change (m0008's triggers) agree with the
/// notifications counted, after each kind of change the store makes.
#[tokio::test]
async fn the_kept_counts_follow_every_change_of_a_notification() {
    let (store, _outbox, env) = environment().await;
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_order(email_order(&id)).await.unwrap();
    let agree = |step: &'static str| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            let mut kept = store.notification_counts(&id).await.unwrap();
            let mut tally = store.tally_notifications(&id).await.unwrap();
            kept.sort_by_key(|(c, s, _)| (c.as_str(), s.as_str()));
            tally.sort_by_key(|(c, s, _)| (c.as_str(), s.as_str()));
            assert_eq!(kept, tally, "after {step}");
            store.count_open(&id).await.unwrap()
        }
    };
    env.run(OrderActivitiesImpl::start_processing, id.clone()).await.unwrap();
    let batch = GenerateBatch { order_id: id.clone(), from_index: 0, limit: 10 };
    env.run(OrderActivitiesImpl::generate_notifications, batch).await.unwrap();
    assert_eq!(agree("generation").await, 2, "two new, one not identified");

    let claimed = store.claim_notifications(&id, Channel::Email, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(agree("the claim").await, 2, "two sending");

    let answer = |n: &varsel_activities::store::Notification, status, awaits_report| {
        varsel_activities::store::ProviderResult {
            id: n.id.clone(),
            order_id: id.clone(),
            status,
            reason: None,
            provider_ref: None,
            awaits_report,
            answered_at: Utc::now(),
        }
    };
    let (a, b) = (&claimed[0], &claimed[1]);
    let answers = [
        answer(a, NotificationStatus::EmailSucceeded, true),
        answer(b, NotificationStatus::EmailFailed, false),
    ];
    store.record_results(&answers.iter().collect::<Vec<_>>()).await.unwrap();
    assert_eq!(agree("the answers").await, 1, "one awaits its report");

    store.expire_notifications(&id, Utc::now() + chrono::Duration::days(365)).await.unwrap();
    assert_eq!(agree("expiry").await, 0, "nothing open");

    store.redrive_reset(&id, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(agree("a redrive").await, 1, "the refused one is new again");

    let again = store.claim_notifications(&id, Channel::Email, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    store.expire_claimed(Channel::Email, &again, Utc::now()).await.unwrap();
    assert_eq!(agree("a claimed one given up").await, 0);
}

#[tokio::test]
async fn status_webhooks_are_written_with_the_changes_they_tell_of() {
    use varsel_activities::store::{EndpointChange, NewEndpoint};
    use varsel_activities::webhooks::WebhookEvent;
    let (store, _outbox, env) = environment().await;
    let endpoint = |creator: &str, events: Vec<WebhookEvent>| NewEndpoint {
        creator: creator.into(),
        url: "https://hooks.example.org/varsel".into(),
        description: None,
        events,
        secret: varsel_activities::webhooks::new_secret(),
    };
    let everything = store
        .create_webhook_endpoint(endpoint(
            "ttd",
            vec![
                WebhookEvent::NotificationStatusChanged,
                WebhookEvent::NotificationFinal,
                WebhookEvent::OrderCompleted,
            ],
        ))
        .await
        .unwrap();
    let finals = store
        .create_webhook_endpoint(endpoint("ttd", vec![WebhookEvent::NotificationFinal]))
        .await
        .unwrap();
    let other =
        store.create_webhook_endpoint(endpoint("other", WebhookEvent::ALL.to_vec())).await.unwrap();
    let disabled =
        store.create_webhook_endpoint(endpoint("ttd", WebhookEvent::ALL.to_vec())).await.unwrap();
    let change = EndpointChange { enabled: Some(false), ..Default::default() };
    store.update_webhook_endpoint(&disabled.id, "ttd", change).await.unwrap();

    let id = uuid::Uuid::new_v4().to_string();
    store.insert_order(email_order(&id)).await.unwrap();
    env.run(OrderActivitiesImpl::start_processing, id.clone()).await.unwrap();
    let batch = GenerateBatch { order_id: id.clone(), from_index: 0, limit: 10 };
    env.run(OrderActivitiesImpl::generate_notifications, batch).await.unwrap();
    let send = SendBatch { order_id: id.clone(), channel: Channel::Email, limit: 10 };
    env.run(OrderActivitiesImpl::send_batch, send).await.unwrap();
    env.run(OrderActivitiesImpl::settle_order, id.clone()).await.unwrap();

    let messages = |endpoint: String| {
        let (store, id) = (store.clone(), id.clone());
        async move {
            store
                .pending_webhooks(&endpoint, &id, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|m| {
                    let payload: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
                    assert_eq!(payload["type"], m.event_type.as_str());
                    (m.event_type, payload["data"]["status"].as_str().unwrap().to_owned())
                })
                .collect::<Vec<_>>()
        }
    };
    let all = messages(everything.id.clone()).await;
    let count =
        |event: &str, status: &str| all.iter().filter(|(e, s)| e == event && s == status).count();
    // Two sent (new, sending, succeeded; final at succeeded: no reports awaited), one without an
    // address (failed at creation: final at once), then the order's completion, last.
    assert_eq!(count("notification.status_changed", "Email_New"), 2, "{all:?}");
    assert_eq!(count("notification.status_changed", "Email_Sending"), 2, "{all:?}");
    assert_eq!(count("notification.status_changed", "Email_Succeeded"), 2, "{all:?}");
    assert_eq!(count("notification.final", "Email_Succeeded"), 2, "{all:?}");
    assert_eq!(count("notification.status_changed", "Email_Failed_RecipientNotIdentified"), 1);
    assert_eq!(count("notification.final", "Email_Failed_RecipientNotIdentified"), 1);
    assert_eq!(all.last().unwrap(), &("order.completed".to_owned(), "Completed".to_owned()));
    assert_eq!(all.len(), 2 * 3 + 2 + 1 + 1 + 1);
    // Each endpoint gets only what it asked for; another creator's and a disabled one nothing.
    let finals = messages(finals.id).await;
    assert_eq!(finals.len(), 3, "{finals:?}");
    assert!(finals.iter().all(|(e, _)| e == "notification.final"));
    assert!(messages(other.id).await.is_empty());
    assert!(messages(disabled.id).await.is_empty());
}

/// The console's reads of one order: its notifications a page at a time (every one once, in
/// recipient order, narrowed by status), why they failed, and its events counted over time.
#[tokio::test]
async fn an_orders_notifications_page_and_count_as_the_console_reads_them() {
    use varsel_activities::store::{Notification, NotificationKey};
    let store = memory_store().await;
    let id = uuid::Uuid::new_v4().to_string();
    store.insert_order(email_order(&id)).await.unwrap();
    let now = Utc::now();
    let statuses = [
        NotificationStatus::EmailSucceeded,
        NotificationStatus::EmailFailedTtl,
        NotificationStatus::EmailSucceeded,
        NotificationStatus::EmailFailedBounced,
        NotificationStatus::EmailFailedTtl,
        NotificationStatus::EmailDelivered,
        NotificationStatus::EmailNew,
    ];
    let rows: Vec<Notification> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| Notification {
            id: uuid::Uuid::now_v7().to_string(),
            order_id: id.clone(),
            channel: Channel::Email,
            // Two addresses share a recipient: the page key is (recipient, channel, address).
            recipient_idx: (i / 2) as u32,
            org_no: None,
            nin: None,
            address: format!("n{i}@example.no"),
            subject: None,
            body: None,
            status: *status,
            status_changed: now,
            status_reason: (*status == NotificationStatus::EmailFailedBounced)
                .then(|| "550 5.1.1 no such user".to_owned()),
            provider_ref: None,
            attempts: 1,
            expiry: now + chrono::Duration::hours(1),
            segments: None,
            delivery_report: None,
            awaits_report: false,
        })
        .collect();
    store.insert_notifications(rows).await.unwrap();

    // Pages of three, each after the last one's key: every notification once, in order.
    let mut seen = Vec::new();
    let mut after: Option<NotificationKey> = None;
    loop {
        let page = store.notification_page(&id, &[], after.as_ref(), 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(NotificationKey::from);
        seen.extend(page.into_iter().map(|n| n.address));
    }
    let expected: Vec<String> = (0..statuses.len()).map(|i| format!("n{i}@example.no")).collect();
    assert_eq!(seen, expected);
    let failed: Vec<NotificationStatus> =
        NotificationStatus::ALL.iter().copied().filter(|s| s.is_failure()).collect();
    let page = store.notification_page(&id, &failed, None, 50).await.unwrap();
    let addresses: Vec<&str> = page.iter().map(|n| n.address.as_str()).collect();
    assert_eq!(addresses, ["n1@example.no", "n3@example.no", "n4@example.no"]);

    let reasons = store.failure_reasons(&id, 12).await.unwrap();
    let told: Vec<(&str, Option<&str>, i64)> =
        reasons.iter().map(|r| (r.status.as_str(), r.reason.as_deref(), r.count)).collect();
    assert_eq!(
        told,
        [
            ("Email_Failed_TTL", None, 2),
            ("Email_Failed_Bounced", Some("550 5.1.1 no such user"), 1)
        ]
    );

    // Every event lands in one bucket or another, however wide.
    let (first, last) = store.event_span(&id).await.unwrap().expect("events");
    assert!(first <= last);
    for width in [0.001, 1.0, 3600.0] {
        let buckets = store.event_buckets(&id, first, width).await.unwrap();
        assert_eq!(buckets.iter().map(|b| b.count).sum::<i64>(), statuses.len() as i64);
        assert!(buckets.iter().all(|b| b.bucket >= 0 && b.source == "created"), "{buckets:?}");
    }
    // The counts per second the store keeps as it writes events agree with the events.
    let seconds = store.event_seconds(&id).await.unwrap();
    assert_eq!(seconds.iter().map(|s| s.count).sum::<i64>(), statuses.len() as i64);
    let new = seconds.iter().filter(|s| s.status == NotificationStatus::EmailNew).count();
    assert!(new <= 1, "one row a second, status and source: {seconds:?}");
    assert!(seconds.iter().all(|s| s.second >= first.timestamp() && s.second <= last.timestamp()));
}
