//! The EventBridge door: `POST /` with `X-Amz-Target: AWSEvents.<Op>`, a second front door onto
//! the same model as `/v1` (docs/design/eventbridge.md).
//!
//! So far it holds only the SigV4 verification of its requests ([`sigv4`]); the route, shapes and
//! operations come with it being wired in.

pub(crate) mod sigv4;
