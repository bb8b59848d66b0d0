//! The hub's public web pages: connectivity-probe answers that keep phones
//! on a Wi-Fi without Internet, the join page and the account endpoint.

mod common;
use common::smtp::hub;
use common::web::request;

#[tokio::test]
async fn connectivity_probes_keep_phones_on_the_wifi() {
    let (_t, hub) = hub(|_| {}).await;
    let web = hub.endpoint(cairn::app::WEB_HTTP).unwrap();
    // (path, status, body, content type)
    for (path, status, body, ctype) in [
        ("/generate_204", 204, "", None),
        ("/gen_204", 204, "", None),
        (
            "/hotspot-detect.html",
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n",
            Some("text/html; charset=utf-8"),
        ),
        (
            "/library/test/success.html",
            200,
            "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>\n",
            Some("text/html; charset=utf-8"),
        ),
        (
            "/connecttest.txt",
            200,
            "Microsoft Connect Test",
            Some("text/plain; charset=utf-8"),
        ),
        (
            "/ncsi.txt",
            200,
            "Microsoft NCSI",
            Some("text/plain; charset=utf-8"),
        ),
        (
            "/success.txt",
            200,
            "success\n",
            Some("text/plain; charset=utf-8"),
        ),
    ] {
        let r = request(web, path, "", None).await;
        assert_eq!((r.status, r.body.as_str()), (status, body), "{path}");
        assert_eq!(r.header("content-type"), ctype, "{path}");
        assert!(
            r.header("cache-control")
                .is_some_and(|c| c.contains("no-store")),
            "{path}: probes must not be cached"
        );
        if status == 204 {
            assert!(r.bytes.is_empty(), "{path}");
        }
    }
    let r = request(web, "/api/captive", "", None).await;
    assert_eq!(r.header("content-type"), Some("application/captive+json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["captive"], false);
    assert_eq!(v["venue-info-url"], "http://hub/");
    hub.shutdown().await;
}
