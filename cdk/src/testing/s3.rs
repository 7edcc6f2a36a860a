//! An in-process S3-compatible server for tests (s3s over a temp directory), on 127.0.0.1 and a
//! free port, with access keys and path-style addressing. It runs on its own thread and
//! runtime, so it outlives any single `#[tokio::test]`; each test takes a fresh bucket.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use object_store::aws::{AmazonS3, AmazonS3Builder};

/// The access key the test server accepts.
pub const ACCESS_KEY: &str = "cdk-test-access";
/// The secret key the test server accepts.
pub const SECRET_KEY: &str = "cdk-test-secret-key";
/// The region the test server claims.
pub const REGION: &str = "us-east-1";

/// An in-process S3 server over a temporary directory.
#[derive(Debug)]
pub struct TestS3 {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// The access key to use.
    pub access_key: String,
    /// The secret key to use.
    pub secret_key: String,
    /// The region to use.
    pub region: String,
    /// Buckets are directories under this root.
    pub root: PathBuf,
}

static SHARED: OnceLock<TestS3> = OnceLock::new();
static NEXT_BUCKET: AtomicU32 = AtomicU32::new(0);

impl TestS3 {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static TestS3 {
        SHARED.get_or_init(Self::start)
    }

    fn start() -> Self {
        let root = tempfile::Builder::new()
            .prefix("cdk-test-s3-")
            .tempdir()
            .expect("cannot create a temp dir for the test S3 server")
            .keep();
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind the test S3 server");
        listener
            .set_nonblocking(true)
            .expect("cannot configure the test S3 listener");
        let endpoint = format!(
            "http://{}",
            listener.local_addr().expect("no local address")
        );
        let fs = s3s_fs::FileSystem::new(&root).expect("cannot open the test S3 root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        std::thread::Builder::new()
            .name("test-s3".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("cannot start the test S3 runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("cannot use the test S3 listener");
                    let http = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    loop {
                        let Ok((socket, _)) = listener.accept().await else {
                            continue;
                        };
                        let conn = http
                            .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                            .into_owned();
                        tokio::spawn(async move {
                            let _ = conn.await;
                        });
                    }
                });
            })
            .expect("cannot start the test S3 thread");
        register_cleanup();
        Self {
            endpoint,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            region: REGION.into(),
            root,
        }
    }

    /// Creates an empty bucket with a unique name starting with `prefix`.
    pub fn fresh_bucket(&self, prefix: &str) -> String {
        let n = NEXT_BUCKET.fetch_add(1, Ordering::SeqCst);
        let clean = super::name_part(prefix, '-');
        let name = format!("{clean}-{}-{n}", std::process::id());
        std::fs::create_dir_all(self.root.join(&name)).expect("cannot create a test bucket");
        name
    }

    /// An object_store client for `bucket` (path-style, plain HTTP).
    pub fn store(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_bucket_name(bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .build()
            .expect("cannot build the test S3 client")
    }
}

/// Removes the server's directory when the test process exits (statics are never dropped).
fn register_cleanup() {
    extern "C" fn remove_root() {
        if let Some(s3) = SHARED.get() {
            let _ = std::fs::remove_dir_all(&s3.root);
        }
    }
    super::at_exit(remove_root);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    /// The bytes of the object at `path`.
    async fn get(store: &AmazonS3, path: &str) -> bytes::Bytes {
        let object = store.get(&Path::from(path)).await.unwrap();
        object.bytes().await.unwrap()
    }

    #[tokio::test]
    async fn put_list_get_multipart_delete() {
        let s3 = TestS3::shared();
        let store = s3.store(&s3.fresh_bucket("roundtrip"));
        store
            .put(
                &Path::from("a/one.jsonl"),
                PutPayload::from_static(b"{\"x\":1}\n"),
            )
            .await
            .unwrap();
        let got = get(&store, "a/one.jsonl").await;
        assert_eq!(&got[..], b"{\"x\":1}\n");
        let mut up = store.put_multipart(&Path::from("a/big.bin")).await.unwrap();
        up.put_part(PutPayload::from(vec![1u8; 5 << 20]))
            .await
            .unwrap();
        up.put_part(PutPayload::from(vec![2u8; 1 << 20]))
            .await
            .unwrap();
        up.complete().await.unwrap();
        let big = get(&store, "a/big.bin").await;
        assert_eq!(big.len(), 6 << 20);
        let mut names: Vec<String> = store
            .list(Some(&Path::from("a")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        names.sort();
        assert_eq!(names, ["a/big.bin", "a/one.jsonl"]);
        store.delete(&Path::from("a/one.jsonl")).await.unwrap();
        assert!(store.get(&Path::from("a/one.jsonl")).await.is_err());
    }

    #[tokio::test]
    async fn wrong_secret_is_rejected() {
        let s3 = TestS3::shared();
        let bucket = s3.fresh_bucket("auth");
        let store = AmazonS3Builder::new()
            .with_endpoint(&s3.endpoint)
            .with_allow_http(true)
            .with_bucket_name(&bucket)
            .with_region(&s3.region)
            .with_access_key_id(&s3.access_key)
            .with_secret_access_key("wrong")
            .build()
            .unwrap();
        let err = store
            .put(&Path::from("x"), PutPayload::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("403") || err.to_string().contains("Signature"),
            "{err}"
        );
    }
}
