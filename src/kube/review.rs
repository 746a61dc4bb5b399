//! The `admission.k8s.io/v1` AdmissionReview, as much of it as lxcfs-rs reads and writes.
//!
//! Own serde types instead of kube-core's: kube-core pulls k8s-openapi and serialises
//! `patch` as a JSON array of numbers where the API documents base64, and the object is
//! kept as raw JSON here anyway, so that fields this build does not know survive the patch.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only AdmissionReview version lxcfs-rs speaks (the webhook configuration asks for it).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// The kind of the review object.
pub const KIND: &str = "AdmissionReview";

/// Why no response can be given at all: without the request's uid the apiserver cannot match
/// an answer, so the caller reports this itself (HTTP 400, or exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON.
    #[error("the AdmissionReview is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The body is JSON but carries no `request.uid` string.
    #[error("the AdmissionReview has no request.uid")]
    NoUid,
}

/// The group, version and kind of the reviewed object.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    /// The API group (`""` for the core group, which pods are in).
    #[serde(default)]
    pub group: String,
    /// The API version (`v1`).
    #[serde(default)]
    pub version: String,
    /// The kind (`Pod`).
    #[serde(default)]
    pub kind: String,
}

/// The part of `request` lxcfs-rs uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Identifies this review; the response must echo it.
    pub uid: String,
    /// What is being admitted.
    pub kind: GroupVersionKind,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object's name (empty for pods named by `generateName`).
    #[serde(default)]
    pub name: Option<String>,
    /// The object as sent, untouched.
    #[serde(default)]
    pub object: Option<Value>,
}

impl Request {
    /// Whether this asks to create a core/v1 Pod, the one thing lxcfs-rs mutates.
    pub fn is_pod_create(&self) -> bool {
        self.operation == "CREATE"
            && self.kind.group.is_empty()
            && self.kind.version == "v1"
            && self.kind.kind == "Pod"
    }

    /// `namespace/name` for logs: the pod's name, or its `generateName` prefix followed by
    /// `*` when the apiserver has not named it yet.
    pub fn display_name(&self) -> String {
        let meta = self.object.as_ref().and_then(|o| o.get("metadata"));
        let field = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let name = self
            .name
            .as_deref()
            .filter(|s| !s.is_empty())
            .or_else(|| field("name"))
            .map(str::to_string)
            .or_else(|| field("generateName").map(|g| format!("{g}*")))
            .unwrap_or_else(|| "-".to_string());
        let namespace = self
            .namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .or_else(|| field("namespace"))
            .unwrap_or("-");
        format!("{namespace}/{name}")
    }
}

/// A review as received: its uid, and the request when it could be read.
#[derive(Debug)]
pub struct Received {
    /// The request's uid, always present (otherwise [`parse`] fails).
    pub uid: String,
    /// The request, or why it could not be read (answered with an allowing response).
    pub request: Result<Request, String>,
}

/// Reads an AdmissionReview. `Err` only when no uid can be found; any other defect is in
/// [`Received::request`], so the apiserver still gets an answer for the uid.
pub fn parse(body: &[u8]) -> Result<Received, ReviewError> {
    let review: Value = serde_json::from_slice(body).map_err(ReviewError::NotJson)?;
    let raw_request = review.get("request").ok_or(ReviewError::NoUid)?;
    let uid = raw_request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::NoUid)?
        .to_string();
    let request = check_envelope(&review).and_then(|()| {
        Request::deserialize(raw_request).map_err(|e| format!("malformed request: {e}"))
    });
    Ok(Received { uid, request })
}

/// The `apiVersion` and `kind` of the review itself.
fn check_envelope(review: &Value) -> Result<(), String> {
    let api_version = review.get("apiVersion").and_then(Value::as_str);
    let kind = review.get("kind").and_then(Value::as_str);
    if api_version == Some(API_VERSION) && kind == Some(KIND) {
        Ok(())
    } else {
        Err(format!(
            "expected apiVersion {API_VERSION} kind {KIND}, got apiVersion {} kind {}",
            api_version.unwrap_or("(none)"),
            kind.unwrap_or("(none)")
        ))
    }
}

/// `status` of a response: only its message, which says why nothing was patched.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Status {
    /// The reason, one line.
    pub message: String,
}

/// The `response` of a review.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The request's uid.
    pub uid: String,
    /// Always true: lxcfs-rs never blocks a workload (its webhook's failurePolicy is Ignore,
    /// and a refusal from the webhook itself would block just as hard).
    pub allowed: bool,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of the JSON array of RFC 6902 operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Shown to the client that created the pod (`kubectl` prints them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why the request could not be handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl Response {
    /// Allows `uid` unchanged.
    pub fn allow(uid: &str) -> Self {
        Response {
            uid: uid.to_string(),
            allowed: true,
            patch_type: None,
            patch: None,
            warnings: Vec::new(),
            status: None,
        }
    }

    /// Allows `uid` with `ops` applied; no patch at all when `ops` is empty, since an empty
    /// patch is noise in the apiserver's audit log.
    pub fn with_patch(mut self, ops: &[Value]) -> Self {
        if !ops.is_empty() {
            let json = serde_json::to_vec(ops).unwrap_or_default();
            self.patch_type = Some("JSONPatch".to_string());
            self.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
        }
        self
    }

    /// Allows `uid` unchanged, saying why nothing was done: in `status` (which the apiserver
    /// records) and as a warning (which the pod's creator sees; `status` alone is ignored on
    /// an allowing response).
    pub fn failed(uid: &str, message: &str) -> Self {
        let message = format!("lxcfs-rs: not injected: {message}");
        Response {
            warnings: vec![truncate(&message)],
            status: Some(Status { message }),
            ..Response::allow(uid)
        }
    }

    /// The whole AdmissionReview carrying this response, as JSON text.
    pub fn to_review_json(&self) -> String {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "response": self,
        })
        .to_string()
    }
}

/// Kubernetes may cut warnings beyond 256 characters anywhere; cut them ourselves on a
/// character boundary.
pub fn truncate(warning: &str) -> String {
    const MAX: usize = 256;
    if warning.len() <= MAX {
        return warning.to_string();
    }
    let mut end = MAX - 3;
    while !warning.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &warning[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_is_needed_and_found_even_in_a_bad_request() {
        assert!(matches!(parse(b"{"), Err(ReviewError::NotJson(_))));
        assert!(matches!(parse(b"[]"), Err(ReviewError::NoUid)));
        // Nesting beyond serde_json's recursion limit is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(ReviewError::NotJson(_))
        ));
        assert!(matches!(
            parse(br#"{"request":{"uid":7}}"#),
            Err(ReviewError::NoUid)
        ));
        let r = parse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1"}}"#)
            .unwrap();
        assert_eq!(r.uid, "u1");
        assert!(r.request.unwrap_err().contains("malformed request"));
        let r = parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u2"}}"#)
            .unwrap();
        assert!(r.request.unwrap_err().contains("v1beta1"));
    }

    #[test]
    fn responses_carry_base64_patches_only_when_there_is_one() {
        let empty = Response::allow("u").with_patch(&[]);
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            serde_json::json!({"uid": "u", "allowed": true})
        );
        let ops = vec![serde_json::json!({"op": "add", "path": "/a", "value": 1})];
        let r = Response::allow("u").with_patch(&ops);
        assert_eq!(r.patch_type.as_deref(), Some("JSONPatch"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(r.patch.unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            Value::Array(ops)
        );
    }

    #[test]
    fn warnings_are_cut_on_a_character_boundary() {
        let long = "é".repeat(200);
        let cut = truncate(&long);
        assert!(cut.len() <= 256 && cut.ends_with("..."), "{}", cut.len());
        assert_eq!(truncate("short"), "short");
    }
}
