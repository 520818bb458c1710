//! Owns the audit record and its hash chain. Each record's hash covers its sequence number, fields and
//! the previous record's hash, so editing a record breaks its own hash and deleting one breaks the
//! link from the next. Records never hold a key or token value: only names, ids and outcomes.

use time::OffsetDateTime;

/// What happened, by whom, where from; written in the transaction of the change it describes.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: OffsetDateTime,
    pub principal_id: String,
    /// Azure's action name: `Microsoft.CognitiveServices/accounts/regenerateKey/action`.
    pub action: String,
    pub scope: String,
    pub source: String,
    pub request_id: String,
    /// `Succeeded`, `Failed` or `Denied`.
    pub result: String,
}

impl AuditRecord {
    /// The same record with another result (a change that was refused or failed).
    pub fn with_result(&self, result: &str) -> Self {
        Self {
            result: result.to_string(),
            ..self.clone()
        }
    }

    /// The subscription the scope is in, for filtering the activity log.
    pub fn subscription(&self) -> Option<String> {
        let mut parts = self.scope.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(""), Some(kw), Some(sub))
                if kw.eq_ignore_ascii_case("subscriptions") && !sub.is_empty() =>
            {
                Some(sub.to_ascii_lowercase())
            }
            _ => None,
        }
    }
}

/// A stored record with its place in the chain.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// The hash of record `seq` chained after `prev`.
pub fn chain_hash(prev: &[u8], seq: i64, at_micros: i64, r: &AuditRecord) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    for field in [
        seq.to_string().as_str(),
        at_micros.to_string().as_str(),
        &r.principal_id,
        &r.action,
        &r.scope,
        &r.source,
        &r.request_id,
        &r.result,
    ] {
        // Length-prefixed, so no two different records hash the same bytes.
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCheck {
    Intact {
        records: u64,
    },
    /// The first record whose hash or link does not match.
    Broken {
        seq: i64,
        records_before: u64,
        reason: String,
    },
}

/// Recomputes the chain over every stored record, oldest first, each with its time in stored
/// microseconds (what its hash covers): the first record whose place, link or contents do not match
/// breaks it.
pub(crate) fn check_chain(records: impl IntoIterator<Item = (i64, AuditEntry)>) -> ChainCheck {
    let mut prev = vec![0u8; 32];
    let mut count = 0u64;
    for (at, entry) in records {
        let broken = |reason: &str| ChainCheck::Broken {
            seq: entry.seq,
            records_before: count,
            reason: reason.to_string(),
        };
        if entry.seq != count as i64 + 1 {
            return broken("a record before this one is missing");
        }
        if entry.prev_hash != prev {
            return broken("its link to the previous record does not match");
        }
        if chain_hash(&prev, entry.seq, at, &entry.record)[..] != entry.hash[..] {
            return broken("its contents do not match its hash");
        }
        prev = entry.hash;
        count += 1;
    }
    ChainCheck::Intact { records: count }
}
