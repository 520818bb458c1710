//! `GET /metrics`: strictly well-formed OpenMetrics text whose counters follow the traffic, served
//! without a token only to a caller on the server's own host, to others only with a token allowed
//! to read metrics (`--metrics-access`); and `--log-format json`, whose lines carry the request id
//! of the request they were logged in.

use std::collections::{BTreeMap, HashMap};

use reqwest::Method;
use serde_json::Value;

use crate::access::token_with_role;
use crate::helpers::*;

crate::backend_tests!(
    metrics_are_strict_openmetrics_and_count_the_traffic,
    relayed_callers_need_a_token_allowed_to_read_metrics,
    metrics_access_flag_narrows_or_turns_off_the_endpoint,
    json_logs_are_one_object_a_line_with_their_request_id,
);

/// One series: metric name and its labels, sorted.
type Series = (String, BTreeMap<String, String>);

/// Parses OpenMetrics text strictly (the format `/metrics` declares): every line a descriptor of a
/// family declared once (`# TYPE` before its samples), or a sample of the family last declared
/// whose name is the family's plus a suffix its type allows, with well-formed labels and a number;
/// no series twice; histogram buckets cumulative, ending at `+Inf` equal to `_count`; and `# EOF`
/// last. Any deviation is an error naming the line.
fn parse(text: &str) -> Result<HashMap<Series, f64>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition does not end with \"# EOF\\n\"")?;
    let mut families: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut series = HashMap::new();
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for (number, line) in body.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if let Some(descriptor) = line.strip_prefix("# ") {
            let mut parts = descriptor.splitn(3, ' ');
            let (kind, name, rest) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next(),
            );
            if !name_ok(name) {
                return Err(fail("bad metric family name"));
            }
            match kind {
                "TYPE" => {
                    let kind = rest.ok_or_else(|| fail("TYPE without a type"))?;
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "gaugehistogram",
                        "summary",
                        "info",
                        "stateset",
                        "unknown",
                    ];
                    if !known.contains(&kind) {
                        return Err(fail("unknown metric type"));
                    }
                    if families.insert(name.into(), kind.into()).is_some() {
                        return Err(fail("family declared twice"));
                    }
                    current = Some((name.into(), kind.into()));
                }
                "HELP" | "UNIT" => {
                    if kind == "UNIT" && !rest.is_some_and(|u| name.ends_with(&format!("_{u}"))) {
                        return Err(fail("a unit the family's name does not end with"));
                    }
                }
                _ => return Err(fail("unknown descriptor")),
            }
            continue;
        }
        let (family, kind) = current
            .as_ref()
            .ok_or_else(|| fail("a sample before any TYPE"))?;
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| fail("a sample without a value"))?;
        let name = &line[..name_end];
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => &[""],
        };
        if !suffixes.iter().any(|s| *name == format!("{family}{s}")) {
            return Err(fail("a sample whose name is not its family's"));
        }
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(inner).map_err(|e| fail(&e))?;
            labels = parsed;
            rest = after;
        }
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| fail("no space before the value"))?
            .split(' ');
        let raw = fields.next().unwrap_or("");
        let value = match raw {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => raw
                .parse::<f64>()
                .map_err(|_| fail("a value that is no number"))?,
        };
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<f64>()
                .map_err(|_| fail("a timestamp that is no number"))?;
        }
        if fields.next().is_some() {
            return Err(fail("trailing fields"));
        }
        // NaN is no count either.
        if kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(fail("a negative or NaN counter"));
        }
        if series.insert((name.to_string(), labels), value).is_some() {
            return Err(fail("a series twice"));
        }
    }
    // Histograms: cumulative buckets ending at +Inf, which equals _count.
    for (family, kind) in &families {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = series
            .iter()
            .filter(|((n, _), _)| *n == format!("{family}_bucket"))
            .map(|((_, l), v)| {
                let le = l
                    .get("le")
                    .ok_or(format!("{family}: a bucket without le"))?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse::<f64>()
                        .map_err(|_| format!("{family}: le {le:?}"))?
                };
                Ok((bound, *v))
            })
            .collect::<Result<_, String>>()?;
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
            return Err(format!("{family}: buckets are not cumulative"));
        }
        let count = series
            .iter()
            .find(|((n, _), _)| *n == format!("{family}_count"))
            .map(|(_, v)| *v)
            .ok_or(format!("{family}: no _count"))?;
        if buckets.last() != Some(&(f64::INFINITY, count)) {
            return Err(format!("{family}: the +Inf bucket is not _count"));
        }
    }
    Ok(series)
}

/// `k="v",…}` (what follows a sample's `{`): the labels, and the text after the `}`.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut at = 0;
    loop {
        if labels.is_empty() && text[at..].starts_with('}') {
            return Ok((labels, &text[at + 1..]));
        }
        let eq = text[at..].find("=\"").ok_or("a label without =\"")?;
        let name = &text[at..at + eq];
        let mut chars = name.chars();
        let well_named = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_named {
            return Err(format!("bad label name {name:?}"));
        }
        at += eq + 2;
        let mut value = String::new();
        loop {
            let c = text[at..].chars().next().ok_or("unclosed label value")?;
            at += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    let e = text[at..].chars().next().ok_or("bad escape")?;
                    at += e.len_utf8();
                    value.push(match e {
                        '\\' => '\\',
                        '"' => '"',
                        'n' => '\n',
                        _ => return Err("bad escape".into()),
                    });
                }
                '\n' => return Err("a newline in a label value".into()),
                c => value.push(c),
            }
        }
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        match text[at..].chars().next() {
            Some(',') => at += 1,
            Some('}') => return Ok((labels, &text[at + 1..])),
            _ => return Err("labels not separated by ','".into()),
        }
    }
}

/// Scrapes `/metrics` as `token` (none: without one) with `headers`; status and body.
async fn scrape(s: &TestServer, token: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = s.client.get(s.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The parsed metrics, scraped from this host without a token.
async fn metrics(s: &TestServer) -> HashMap<Series, f64> {
    let response = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The value of the series `name{labels}`, 0 if it is not there yet.
fn value(metrics: &HashMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    metrics
        .get(&(name.to_string(), labels))
        .copied()
        .unwrap_or(0.0)
}

#[test]
fn the_parser_refuses_malformed_expositions() {
    let good = "# HELP a_b Help.\n# TYPE a_b counter\na_b_total{type=\"x\",result=\"ok\"} 3\n# TYPE h histogram\nh_sum 1.5\nh_count 2\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\n# EOF\n";
    let parsed = parse(good).unwrap();
    assert_eq!(
        value(&parsed, "a_b_total", &[("type", "x"), ("result", "ok")]),
        3.0
    );
    for bad in [
        good.trim_end_matches("# EOF\n"),
        &good.replace("a_b_total{", "a_c_total{"),
        &good.replace("result=\"ok\"", "result=ok"),
        &good.replace("\"ok\"}", "\"ok\",}"),
        &good.replace("} 3", "} three"),
        &good.replace("} 3", "}3"),
        &good.replace("h_bucket{le=\"0.1\"} 1", "h_bucket{le=\"0.1\"} 3"),
        &good.replace("h_count 2", "h_count 5"),
        &good.replace("# TYPE h histogram\n", ""),
        &good.replace("result=\"ok\"", "2result=\"ok\""),
        &format!(
            "{}a_b_total{{type=\"x\",result=\"ok\"}} 4\n# EOF\n",
            good.trim_end_matches("# EOF\n")
        ),
    ] {
        assert!(parse(bad).is_err(), "accepted:\n{bad}");
    }
}

const CS: &str = "Microsoft.CognitiveServices/accounts";

async fn metrics_are_strict_openmetrics_and_count_the_traffic() {
    let s = TestServer::start_with("info", &[("REKEY_AUTH_FAILURE_LIMIT", "2")]).await;
    s.create_group("rg").await;
    let account = s.create_account("rg", "acct").await;
    let endpoint = account["properties"]["endpoint"].as_str().unwrap();
    let url = format!("{endpoint}text/analytics/v3.1/languages");
    let (_, keys) = s.list_keys("rg", "acct").await;
    let key = keys["key1"].as_str().unwrap();
    let before = metrics(&s).await;
    assert_eq!(
        value(&before, "rekey_index_keys", &[]),
        2.0,
        "one account, two keys"
    );
    for name in [
        "rekey_keys_overdue",
        "rekey_event_outbox_depth",
        "rekey_change_feed_lag_seconds",
    ] {
        assert!(
            before.contains_key(&(name.to_string(), BTreeMap::new())),
            "{name} is exposed"
        );
    }

    // Enough accepted calls that each of the server's threads times some (one in 16 each).
    let accepted = 100;
    for _ in 0..accepted {
        let response = s
            .client
            .get(&url)
            .header("Ocp-Apim-Subscription-Key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let wrong = format!("{}x", &key[..key.len() - 1]);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = s
            .client
            .get(&url)
            .header("Ocp-Apim-Subscription-Key", &wrong)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429], "two failures, then throttled");
    let (status, _) = s.regenerate("rg", "acct", "Key2").await;
    assert_eq!(status, 200);

    let after = metrics(&s).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let calls = "rekey_dataplane_requests_total";
    assert_eq!(
        moved(calls, &[("type", CS), ("result", "ok")]),
        accepted as f64
    );
    assert_eq!(
        moved(calls, &[("type", CS), ("result", "unauthorized")]),
        2.0
    );
    // A throttled call is refused before its resource is looked up.
    assert_eq!(
        moved(calls, &[("type", "unknown"), ("result", "throttled")]),
        1.0
    );
    for result in ["forbidden", "retired", "disabled", "not_found"] {
        assert!(
            after.contains_key(&(
                calls.to_string(),
                [
                    ("type".to_string(), CS.to_string()),
                    ("result".to_string(), result.to_string())
                ]
                .into()
            )),
            "{result} is exposed"
        );
        assert_eq!(
            moved(calls, &[("type", CS), ("result", result)]),
            0.0,
            "{result}"
        );
    }
    let timed = moved("rekey_dataplane_request_duration_seconds_count", &[]);
    assert!((1.0..=103.0).contains(&timed), "{timed} of 103 calls timed");
    assert!(moved("rekey_dataplane_request_duration_seconds_sum", &[]) > 0.0);
    assert_eq!(moved("rekey_regenerations_total", &[("type", CS)]), 1.0);

    // The regeneration, counted under its operation id as the OpenAPI document names it.
    let openapi: Value = s
        .client
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let regenerate = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(path, _)| {
            path.ends_with("/Microsoft.CognitiveServices/accounts/{accountName}/regenerateKey")
        })
        .map(|(_, item)| item["post"]["operationId"].as_str().unwrap().to_string())
        .expect("the regenerate operation is documented");
    let management = "rekey_management_requests_total";
    assert_eq!(
        moved(management, &[("operation", &regenerate), ("status", "200")]),
        1.0
    );
    assert!(
        moved(management, &[("operation", "Metrics"), ("status", "200")]) >= 1.0,
        "scrapes count too"
    );
    assert_eq!(
        value(&after, "rekey_index_keys", &[]),
        3.0,
        "two current keys, and the replaced one's digest, recognised as regenerated for a day"
    );
}

async fn relayed_callers_need_a_token_allowed_to_read_metrics() {
    let s = TestServer::start().await;
    s.create_group("rg").await;
    let relayed = [("X-Forwarded-For", "203.0.113.7")];
    let sub = s.sub_path();
    let (_, monitoring) = token_with_role(&s, "Monitoring Reader", &sub).await;
    let (_, reader) = token_with_role(&s, "Reader", &sub).await;
    let (_, verifier) = token_with_role(&s, "Verifier", &sub).await;
    let (_, group_only) =
        token_with_role(&s, "Monitoring Reader", &format!("{sub}/resourceGroups/rg")).await;

    // A proxy on this host makes its clients look local: a relayed call is not taken as local.
    for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP"] {
        let (status, body) = scrape(&s, None, &[(header, "203.0.113.7")]).await;
        assert_eq!(status, 401, "{header}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "AuthenticationFailed");
    }
    let (status, body) = scrape(
        &s,
        Some("rkt_NotAToken000000000000000000000000000000"),
        &relayed,
    )
    .await;
    assert_eq!(status, 401, "{body}");

    for (token, who) in [
        (&monitoring, "Monitoring Reader"),
        (&reader, "Reader"),
        (&s.token, "the owner"),
    ] {
        let (status, body) = scrape(&s, Some(token), &relayed).await;
        assert_eq!(status, 200, "{who}: {body}");
        parse(&body).unwrap();
    }
    for (token, who) in [
        (&verifier, "a Verifier"),
        (&group_only, "a Monitoring Reader of one group"),
    ] {
        let (status, body) = scrape(&s, Some(token), &relayed).await;
        assert_eq!(status, 403, "{who}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "AuthorizationFailed", "{who}");
    }
    // Monitoring Reader reads metrics, not resources or keys.
    s.create_account("rg", "acct").await;
    let account = s.account_path("rg", "acct");
    for (method, path) in [
        (
            Method::GET,
            format!("{sub}/resourcegroups/rg?api-version={RG_VERSION}"),
        ),
        (Method::GET, format!("{account}?api-version={CS_VERSION}")),
        (
            Method::POST,
            format!("{account}/listKeys?api-version={CS_VERSION}"),
        ),
    ] {
        let (status, body) = crate::access::call_as(&s, &monitoring, method, &path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
}

async fn metrics_access_flag_narrows_or_turns_off_the_endpoint() {
    let relayed = [("X-Forwarded-For", "203.0.113.7")];
    let s = TestServer::start_with("info", &[("REKEY_METRICS_ACCESS", "token")]).await;
    assert_eq!(
        scrape(&s, None, &[]).await.0,
        401,
        "token: no token, even from this host"
    );
    assert_eq!(scrape(&s, Some(&s.token), &[]).await.0, 200);
    drop(s);

    let s = TestServer::start_with("info", &[("REKEY_METRICS_ACCESS", "loopback")]).await;
    assert_eq!(scrape(&s, None, &[]).await.0, 200);
    let (status, body) = scrape(&s, Some(&s.token), &relayed).await;
    assert_eq!(
        status, 403,
        "loopback: no token opens it to a relayed caller: {body}"
    );
    drop(s);

    let s = TestServer::start_with("info", &[("REKEY_METRICS_ACCESS", "off")]).await;
    for token in [None, Some(s.token.as_str())] {
        let (status, body) = scrape(&s, token, &[]).await;
        assert_eq!(status, 404, "{body}");
    }
}

async fn json_logs_are_one_object_a_line_with_their_request_id() {
    let mut s = TestServer::start_with("debug", &[("REKEY_LOG_FORMAT", "json")]).await;
    s.create_group("rg").await;
    let account = s.create_account("rg", "acct").await;
    let endpoint = account["properties"]["endpoint"].as_str().unwrap();
    let request_id = |response: &reqwest::Response| {
        response.headers()["x-ms-request-id"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let listed = s
        .client
        .post(s.url(&format!(
            "{}/listKeys?api-version={CS_VERSION}",
            s.account_path("rg", "acct")
        )))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let management = request_id(&listed);
    let refused = s
        .client
        .get(format!("{endpoint}x"))
        .header(
            "Ocp-Apim-Subscription-Key",
            "0123456789abcdef0123456789abcdef",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let data_plane = request_id(&refused);
    s.stop();

    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}")))
        .collect();
    assert!(lines.len() > 10, "debug logging was on");
    for line in &lines {
        assert!(
            line["level"].is_string() && line["fields"].is_object(),
            "{line}"
        );
    }
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .collect()
    };
    let messages = |id: &str| -> Vec<String> {
        of(id)
            .iter()
            .map(|l| l["fields"]["message"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let listed_lines = messages(&management);
    assert!(
        listed_lines.contains(&"request".to_string()),
        "{listed_lines:?}"
    );
    assert!(
        listed_lines.len() > 1,
        "lines logged while the call was handled carry its id too: {listed_lines:?}"
    );
    let refused_lines = messages(&data_plane);
    assert!(
        refused_lines.contains(&"data-plane call refused".to_string()),
        "{refused_lines:?}"
    );
    assert!(
        refused_lines.contains(&"data-plane call".to_string()),
        "{refused_lines:?}"
    );
    // Each request's summary line is in its own request's span, and no other's.
    for line in lines.iter().filter(|l| l["fields"]["message"] == "request") {
        assert!(line["span"]["request_id"].is_string(), "{line}");
    }
}
