//! The browser app (`clients/web/`, bundled into `clients/web/dist/` and embedded in the
//! binary), served at `/` on the gateway's port so that its Realtime socket and its grpc-web
//! calls (routed here too) are same-origin: no `--cors-origins` is needed to use it.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::GatewayState;

/// One embedded file of the app.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The app as built by `npm run build` in `clients/web` (`.ci/run` checks that the committed
/// bundle is what the sources build to).
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../clients/web/dist/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../clients/web/dist/app.js"),
    },
    Asset {
        path: "/capture-worklet.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../clients/web/dist/capture-worklet.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../clients/web/dist/app.css"),
    },
];

/// Scripts, styles and connections from this origin only; the microphone worklet is a script
/// of this origin too. The page may not be framed (no clickjacking of the mic prompt).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// `GET` routes for every asset of the app.
pub(super) fn routes() -> Router<Arc<GatewayState>> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

fn serve(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small files, and a new binary may bring a new app: revalidate every load.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}
