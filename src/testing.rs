//! Test equipment that hearken's tests and anyone testing a client against hearken can use:
//! a TCP proxy whose connections can be cut, the way a network drop or a restarted load
//! balancer cuts them (no clean HTTP/2 end, no reset from the peer).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy on 127.0.0.1 to `upstream`. [`CutProxy::cut`] drops every connection it
/// carries at once; it keeps accepting new ones.
#[derive(Debug)]
pub struct CutProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CutProxy {
    /// Starts the proxy.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&links)));
        Ok(Self {
            addr,
            links,
            accept,
        })
    }

    /// Drops every open connection (both sides' sockets close at once); returns how many.
    pub fn cut(&self) -> usize {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let open = links.iter().filter(|link| !link.is_finished()).count();
        for link in links.drain(..) {
            link.abort();
        }
        open
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    while let Ok((mut client, _)) = listener.accept().await {
        let link = tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        links.lock().unwrap_or_else(|e| e.into_inner()).push(link);
    }
}
