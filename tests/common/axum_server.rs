//! An axum server on 127.0.0.1 for the tests, on the test's runtime.

/// Serves `app` on 127.0.0.1, on a port the system picks: the base URL
/// (`http://127.0.0.1:<port>`).
pub async fn serve_axum(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}
