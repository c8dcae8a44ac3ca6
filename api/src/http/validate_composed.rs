//! Validation of `POST /future/orders/composed-email` with Altinn's messages, keyed by its
//! FluentValidation property paths (`Recipient.Settings.Attachments[0].SasUrl`, …).
//!
//! Where varsel departs from Altinn (README, "Where varsel departs from Altinn"): a file may be
//! at any public `https` host, not only Azure Blob Storage (Altinn's host rule is its guard
//! against requests to internal hosts; varsel's is the outbound policy, checked here and again
//! when the file is fetched), and `http` is allowed for the hosts `VARSEL_ATTACHMENT_ALLOWED_HOSTS`
//! lists; Altinn's SAS parameter rules apply to Azure Blob URLs, and its expiry rule to every URL
//! with an `se` parameter.

use super::v2_dto::{ComposedEmailRequestDto, FileReferenceDto};
use super::validate::{Errors, OrderKind, Rules, ValidOrder, add, present};
use super::validate_v2::{
    ChainHead, ChainHeadFields, ValidChain, ValidChainOrder, chain_head, email_settings,
};
use chrono::{DateTime, Utc};
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_workflows::domain::{EmailAddress, NotificationChannel};
use varsel_workflows::order::{Attachment, OrderType, Recipient};

/// The media types Altinn accepts for attachments: those Azure Communication Services sends.
const MIME_TYPES: &[&str] = &[
    "video/3gpp",
    "video/3gpp2",
    "application/x-7z-compressed",
    "audio/aac",
    "video/x-msvideo",
    "image/bmp",
    "text/csv",
    "application/msword",
    "application/vnd.ms-word.document.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-fontobject",
    "application/epub+zip",
    "image/gif",
    "application/gzip",
    "image/vnd.microsoft.icon",
    "text/calendar",
    "image/jpeg",
    "application/json",
    "audio/midi",
    "audio/mpeg",
    "video/mp4",
    "video/mpeg",
    "audio/ogg",
    "video/ogg",
    "application/ogg",
    "application/onenote",
    "audio/opus",
    "font/otf",
    "application/pdf",
    "image/png",
    "application/vnd.ms-powerpoint.slideshow.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.presentationml.slideshow",
    "application/vnd.ms-powerpoint",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.ms-publisher",
    "application/x-rar-compressed",
    "application/vnd.ms-outlook",
    "application/rtf",
    "image/svg+xml",
    "application/x-tar",
    "image/tiff",
    "font/ttf",
    "text/plain",
    "application/vnd.visio",
    "audio/wav",
    "audio/webm",
    "video/webm",
    "image/webp",
    "audio/x-ms-wma",
    "video/x-ms-wmv",
    "font/woff",
    "font/woff2",
    "application/vnd.ms-excel",
    "application/vnd.ms-excel.sheet.binary.macroenabled.12",
    "application/vnd.ms-excel.sheet.macroenabled.12",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/xml",
    "text/xml",
    "application/zip",
];

/// How long after the send time a file's URL must stay valid (its `se`).
const URL_VALID_AFTER_SEND: chrono::Duration = chrono::Duration::minutes(15);

/// Validates a composed email; `files` is the outbound policy of attachment URLs.
pub fn validate_composed(
    dto: &ComposedEmailRequestDto,
    rules: &Rules<'_>,
    files: &OutboundPolicy,
) -> Result<ValidChain, Errors> {
    let mut errors = Errors::new();
    let ChainHead { idempotency_id, send_at, condition_endpoint } = chain_head(
        ChainHeadFields {
            idempotency_id: &dto.idempotency_id,
            senders_reference: &dto.senders_reference,
            dialogporten: &dto.dialogporten_association,
            requested_send_time: &dto.requested_send_time,
            condition_endpoint: &dto.condition_endpoint,
        },
        rules,
        &mut errors,
    );
    let Some(r) = &dto.recipient else {
        add(&mut errors, "Recipient", "'Recipient' must not be empty.");
        return Err(errors);
    };
    let address = match present(&r.email_address) {
        None => {
            add(&mut errors, "Recipient.EmailAddress", "'Email Address' must not be empty.");
            None
        }
        Some(a) => match EmailAddress::parse(a) {
            Ok(a) => Some(a.as_str().to_owned()),
            Err(_) => {
                add(&mut errors, "Recipient.EmailAddress", "Invalid email address format.");
                None
            }
        },
    };
    let Some(settings) = &r.email_settings else {
        add(&mut errors, "Recipient.Settings", "Recipient email settings cannot be null.");
        return Err(errors);
    };
    let template =
        email_settings(&Some(settings.content()), "Recipient.Settings", rules, &mut errors);
    let mut attachments = Vec::new();
    for (i, file) in settings.attachments.iter().flatten().enumerate() {
        let key = format!("Recipient.Settings.Attachments[{i}]");
        match &file.0 {
            None => add(&mut errors, &key, "Attachment item must not be null."),
            Some(file) => {
                if let Some(a) = attachment(file, &key, send_at, files, &mut errors) {
                    attachments.push(a);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(idempotency_id), Some(address), Some(mut email)) =
        (idempotency_id, address, template)
    else {
        return Err(errors);
    };
    email.attachments = attachments;
    let dialog = dto.dialogporten_association.as_ref();
    Ok(ValidChain {
        idempotency_id,
        main: ValidChainOrder {
            order_type: OrderType::Composed,
            sms_anytime: false,
            order: ValidOrder {
                kind: OrderKind::Composed,
                channel: NotificationChannel::Email,
                requested_send_time: send_at,
                recipients: vec![Recipient { email: Some(address), ..Default::default() }],
                duplicates: vec![],
                email: Some(email),
                sms: None,
                senders_reference: present(&dto.senders_reference).map(str::to_owned),
                resource_id: None,
                resource_action: None,
                ignore_reservation: false,
                condition_endpoint,
            },
        },
        reminders: vec![],
        dialog_id: dialog.and_then(|d| present(&d.dialog_id)).map(str::to_owned),
        transmission_id: dialog.and_then(|d| present(&d.transmission_id)).map(str::to_owned),
    })
}

/// One file reference, checked as Altinn checks it (with varsel's host rule).
fn attachment(
    file: &FileReferenceDto,
    key: &str,
    send_at: DateTime<Utc>,
    policy: &OutboundPolicy,
    errors: &mut Errors,
) -> Option<Attachment> {
    let name = file.filename.as_deref().unwrap_or_default().trim();
    let named = |why: &str| format!("Attachment '{name}': {why}");
    let filename = if name.is_empty() {
        add(errors, format!("{key}.Filename"), "Attachment filename must not be empty.");
        None
    } else if !valid_filename(name) {
        add(
            errors,
            format!("{key}.Filename"),
            &named("filename must not contain path separators, and must include a file extension."),
        );
        None
    } else {
        Some(name.to_owned())
    };
    let url = match present(&file.sas_url) {
        None => {
            add(errors, format!("{key}.SasUrl"), &named("sasUrl must not be null."));
            None
        }
        Some(raw) => file_url(raw, key, send_at, policy, &named, errors),
    };
    let mime_type = match present(&file.mime_type) {
        None => {
            add(errors, format!("{key}.MimeType"), &named("mimeType must not be empty."));
            None
        }
        Some(t) if !MIME_TYPES.contains(&t.to_ascii_lowercase().as_str()) => {
            add(
                errors,
                format!("{key}.MimeType"),
                &named(
                    "mimeType is not supported. Refer to ACS documentation for the list of accepted MIME types.",
                ),
            );
            None
        }
        Some(t) => Some(t.to_owned()),
    };
    Some(Attachment { filename: filename?, mime_type: mime_type?, url: url? })
}

/// No path separator, no control character, and an extension of at least one character.
fn valid_filename(name: &str) -> bool {
    !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && name.rsplit_once('.').is_some_and(|(_, ext)| !ext.is_empty())
}

/// A file's URL: absolute, `https` (or `http` to a listed host), a destination the outbound
/// policy allows, Altinn's SAS rules on Azure Blob URLs and its expiry rule on any with `se`.
fn file_url(
    raw: &str,
    key: &str,
    send_at: DateTime<Utc>,
    policy: &OutboundPolicy,
    named: &dyn Fn(&str) -> String,
    errors: &mut Errors,
) -> Option<String> {
    let url_key = format!("{key}.SasUrl");
    let Ok(url) = reqwest::Url::parse(raw) else {
        add(errors, &url_key, &named("sasUrl must be an absolute HTTPS URI."));
        return None;
    };
    let host = url.host_str().unwrap_or_default();
    let listed_http = url.scheme() == "http" && policy.lists(host);
    if url.scheme() != "https" && !listed_http {
        add(errors, &url_key, &named("sasUrl must be an absolute HTTPS URI."));
        return None;
    }
    if let Err(refused) = policy.check_url(&url) {
        add(
            errors,
            &url_key,
            &named(&format!(
                "sasUrl is refused: {refused}; varsel fetches files only from public hosts, and others that VARSEL_ATTACHMENT_ALLOWED_HOSTS lists."
            )),
        );
        return None;
    }
    let param =
        |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
    let azure = host.to_ascii_lowercase().ends_with(".blob.core.windows.net");
    if azure {
        let present = |name: &str| param(name).is_some_and(|v| !v.is_empty());
        let blob = param("sr").is_some_and(|v| v.eq_ignore_ascii_case("b"));
        if !(present("se") && present("sp") && present("sig") && blob) {
            add(
                errors,
                &url_key,
                &named("sasUrl is missing required SAS parameters (se, sig, sp, sr)."),
            );
            return None;
        }
    }
    let mut ok = true;
    if let Some(sp) = param("sp")
        && !sp.contains('r')
    {
        add(
            errors,
            &url_key,
            &named("sasUrl does not grant read permission ('r' must be present in 'sp')."),
        );
        ok = false;
    }
    if let Some(se) = param("se") {
        match DateTime::parse_from_rfc3339(&se) {
            Err(_) => {
                add(errors, &url_key, &named("sasUrl has an invalid 'se' (signed expiry) value."));
                ok = false;
            }
            Ok(expiry) if expiry.with_timezone(&Utc) < send_at + URL_VALID_AFTER_SEND => {
                add(
                    errors,
                    key,
                    &named("sasUrl must be valid for at least 15 minutes after requestedSendTime."),
                );
                ok = false;
            }
            Ok(_) => {}
        }
    }
    ok.then(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::valid_filename;

    #[test]
    fn a_filename_has_an_extension_and_no_path() {
        assert!(valid_filename("vedtak.pdf"));
        assert!(valid_filename("a.b.txt"));
        assert!(valid_filename(".pdf"), "an extension alone, as Altinn");
        for bad in ["vedtak", "vedtak.", "../etc/passwd.txt", "c:\\x.pdf", "a\r\n.pdf"] {
            assert!(!valid_filename(bad), "{bad}");
        }
    }
}
