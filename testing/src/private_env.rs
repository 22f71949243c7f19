//! A local environment of a test's own (etcd, kube-apiserver, the emulator on free ports,
//! state in a temporary directory) that the test may restart without disturbing others.

use std::{path::PathBuf, process::Command};

use super::{TestEnv, free_port, read_env_file, repo_root};

pub struct PrivateEnv {
    pub env: TestEnv,
    state: PathBuf,
    ports: [(&'static str, u16); 3],
}

impl PrivateEnv {
    /// Starts everything; the first run builds nothing new (the binaries are cached).
    pub fn up(name: &str) -> Self {
        let state = std::env::temp_dir().join(super::unique_name(name));
        let ports = [
            ("BACKUP_WARDEN_ETCD_PORT", free_port()),
            ("BACKUP_WARDEN_APISERVER_PORT", free_port()),
            ("BACKUP_WARDEN_MOTO_PORT", free_port()),
        ];
        let mut private = Self {
            env: TestEnv {
                kubeconfig: PathBuf::new(),
                kubectl: PathBuf::new(),
                aws_endpoint: String::new(),
            },
            state,
            ports,
        };
        let env_file = private.local_env(&["up"]);
        let vars = read_env_file(std::path::Path::new(env_file.trim()));
        private.env = TestEnv {
            kubeconfig: PathBuf::from(&vars["KUBECONFIG"]),
            kubectl: PathBuf::from(&vars["BACKUP_WARDEN_KUBECTL"]),
            aws_endpoint: vars["BACKUP_WARDEN_AWS_ENDPOINT"].clone(),
        };
        private
    }

    /// The emulator's host:port (for a proxy in front of it).
    pub fn emulator_authority(&self) -> String {
        self.env.aws_endpoint.trim_start_matches("http://").to_string()
    }

    /// Stops `kube-apiserver` or `moto` and starts it again with its data.
    pub fn restart(&self, part: &str) {
        self.local_env(&["restart", part]);
    }

    fn local_env(&self, args: &[&str]) -> String {
        let script = repo_root().join("hack/local-env.sh");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(args)
            .env("BACKUP_WARDEN_STATE", &self.state)
            .stderr(std::process::Stdio::inherit());
        for (var, port) in self.ports {
            command.env(var, port.to_string());
        }
        let output = command.output().expect("run hack/local-env.sh");
        assert!(
            output.status.success(),
            "hack/local-env.sh {args:?} failed ({})",
            output.status
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    }
}

impl Drop for PrivateEnv {
    /// Stops everything; the logs stay when the test failed.
    fn drop(&mut self) {
        self.local_env(&["down"]);
        if std::thread::panicking() {
            eprintln!("the private environment's logs: {}", self.state.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}
