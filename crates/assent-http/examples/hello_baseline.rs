//! The axum hello-world the benchmarks measure Assent's decision endpoint against: same
//! framework, same runtime, no work. `cargo run --release --example hello_baseline -- 127.0.0.1:9000`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let app = Router::new().route("/v1/decisions", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
