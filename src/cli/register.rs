use super::OutputFormat;
use clap::{ArgAction, Args, ValueEnum};

/// Which registry API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// OpenStack Glance Image API v2 (JSON record, then PUT .../file)
    #[value(name = "glance-v2")]
    GlanceV2,
    /// The legacy Image API v1 (x-image-meta-* headers, data in the POST body)
    #[value(name = "glance-v1")]
    GlanceV1,
    /// Huawei Cloud IMS, "Creating Image Metadata (Native OpenStack API)"
    #[value(name = "ims")]
    Ims,
}

/// openstackclient's output formats (`-f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColumnFormat {
    Json,
    Yaml,
    Value,
    Shell,
    Table,
}

/// `diskforge register`: publish an image to OpenStack Glance (v2 or v1) or
/// Huawei Cloud IMS. Flags are named as `openstack image create` names them.
#[derive(Debug, Args)]
#[command(
    about = "Register an image with OpenStack Glance or Huawei Cloud IMS (and upload it)",
    long_about = "Register the image FILENAME with an image registry: OpenStack Glance Image API v2 \
(default), the legacy Image API v1, or Huawei Cloud IMS's native OpenStack API; with --upload, \
stream its data and check the registry's checksums against the ones computed while sending.\n\n\
Endpoint and credentials follow the OpenStack clients: --os-image-url/OS_IMAGE_URL with \
--os-token/OS_AUTH_TOKEN (or OS_TOKEN); or Keystone v3 password auth (OS_AUTH_URL, OS_USERNAME, \
OS_PASSWORD, OS_PROJECT_NAME or OS_PROJECT_ID, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME, \
OS_REGION_NAME, OS_INTERFACE) or application credential auth (OS_AUTH_TYPE=v3applicationcredential, \
OS_APPLICATION_CREDENTIAL_ID or _NAME, OS_APPLICATION_CREDENTIAL_SECRET) with the image endpoint \
from the service catalog; or \
--os-cloud/OS_CLOUD from clouds.yaml (./, ~/.config/openstack, /etc/openstack; secure.yaml \
merged over it, clouds-public.yaml profiles under it). Command-line \
flags win over environment variables, which win over clouds.yaml.\n\n\
Every value is checked before anything is sent; a --disk-format must be in the registry's list \
and must not contradict the file's detected format (a qcow2 declared raw would expose its \
metadata and backing file to the cloud): --force-disk-format sends it anyway, with a warning.\n\n\
Security: a redirect is followed only for a GET to the same scheme, host and port, so the \
token never goes to another origin nor over plain http. A create counts only when answered \
201 Created with the image id diskforge chose; after a failed upload only that record, and \
only while it is still queued or saving, is deleted. An uploaded image must come back active \
with a checksum or os_hash_value that matches. The token, the password and every token \
Keystone issues are replaced by <redacted> in all output, --debug included. --timeout bounds \
each request as a whole; retries are announced on stderr. A certificate that is itself in \
--os-cacert is trusted even if it is a CA certificate (a self-signed server certificate); \
certificate errors are explained and never retried.",
    after_help = "Example:\n  diskforge create -f qcow2 disk.qcow2 10G\n  \
OS_IMAGE_URL=http://glance:9292 OS_AUTH_TOKEN=... diskforge register --upload \\\n      \
--name 'my disk' --private --property os_distro=ubuntu disk.qcow2\n  \
diskforge register --file disk.qcow2 --disk-format qcow2 -f value -c id my-disk"
)]
pub struct RegisterArgs {
    /// The image file to register (and upload with --upload); with --file, the image name (as `openstack image create --file FILE NAME`)
    #[arg(value_name = "FILENAME")]
    pub filename: Option<String>,

    /// Upload this file's data (as `openstack image create --file`); implies --upload
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Registry API: glance-v2, glance-v1 or ims
    #[arg(
        long = "api",
        value_enum,
        default_value = "glance-v2",
        value_name = "API"
    )]
    pub api: Api,

    /// Upload the image data after creating the record, then verify checksums
    #[arg(long = "upload")]
    pub upload: bool,

    /// Image name (default: the file name)
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,

    /// Image ID to reserve (a UUID)
    #[arg(long = "id", value_name = "UUID")]
    pub id: Option<String>,

    /// Disk format (default: detected: qcow2, vmdk, vdi, vhd, vhdx, ploop, raw); checked against the file and the registry's list
    #[arg(long = "disk-format", value_name = "FORMAT")]
    pub disk_format: Option<String>,

    /// Send --disk-format as given: even when it contradicts the file's detected format or is not in the registry's list
    #[arg(long = "force-disk-format")]
    pub force_disk_format: bool,

    /// Container format (default: bare)
    #[arg(long = "container-format", value_name = "FORMAT")]
    pub container_format: Option<String>,

    /// Image is accessible to all projects (admin only)
    #[arg(long = "public", group = "vis")]
    pub public: bool,

    /// Image is accessible only to the owner
    #[arg(long = "private", group = "vis")]
    pub private: bool,

    /// Image can be shared with other projects
    #[arg(long = "shared", group = "vis")]
    pub shared: bool,

    /// Image is accessible to all projects but not listed
    #[arg(long = "community", group = "vis")]
    pub community: bool,

    /// Visibility: public, private, shared or community (default: the registry's)
    #[arg(long = "visibility", value_name = "VISIBILITY", group = "vis")]
    pub visibility: Option<String>,

    /// Prevent the image from being deleted
    #[arg(long = "protected", overrides_with = "unprotected")]
    pub protected: bool,

    /// Allow the image to be deleted (default)
    #[arg(long = "unprotected", overrides_with = "protected")]
    pub unprotected: bool,

    /// Minimum disk size needed to boot the image, in gigabytes
    #[arg(long = "min-disk", value_name = "DISK_GB", allow_hyphen_values = true)]
    pub min_disk: Option<String>,

    /// Minimum RAM needed to boot the image, in megabytes
    #[arg(long = "min-ram", value_name = "RAM_MB", allow_hyphen_values = true)]
    pub min_ram: Option<String>,

    /// Tag to add (repeatable; IMS wants KEY=VALUE)
    #[arg(long = "tag", value_name = "TAG", action = ArgAction::Append)]
    pub tag: Vec<String>,

    /// Extra property KEY=VALUE (repeatable)
    #[arg(long = "property", value_name = "KEY=VALUE", action = ArgAction::Append)]
    pub property: Vec<String>,

    /// IMS operating system version (sent as __os_version)
    #[arg(long = "os-version", value_name = "OS_VERSION")]
    pub os_version: Option<String>,

    /// Show a progress bar while uploading (the default on a terminal)
    #[arg(long = "progress")]
    pub progress: bool,

    /// Quiet: no progress bar
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Keep the image record when the upload fails (default: delete it if still queued or saving)
    #[arg(long = "keep-on-failure")]
    pub keep_on_failure: bool,

    /// Print the requests that would be sent (token and password redacted); send nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,

    /// Print the final image record as human or json
    #[arg(
        long = "output",
        value_enum,
        default_value = "human",
        value_name = "FMT"
    )]
    pub output: OutputFormat,

    /// Print the record as openstackclient does: json, yaml, value, shell or table
    #[arg(short = 'f', long = "format", value_enum, value_name = "FORMAT")]
    pub format: Option<ColumnFormat>,

    /// Print only this field of the record (repeatable), e.g. -f value -c id
    #[arg(short = 'c', long = "column", value_name = "COLUMN", action = ArgAction::Append)]
    pub column: Vec<String>,

    /// Log each request and response status on stderr (twice: as --debug)
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Log requests and responses with headers and JSON bodies (secrets redacted)
    #[arg(long = "debug")]
    pub debug: bool,

    /// Image service endpoint, unversioned [env: OS_IMAGE_URL]
    #[arg(long = "os-image-url", value_name = "URL")]
    pub os_image_url: Option<String>,

    /// Authentication token [env: OS_AUTH_TOKEN, OS_TOKEN]
    #[arg(long = "os-token", value_name = "TOKEN")]
    pub os_token: Option<String>,

    /// Keystone URL [env: OS_AUTH_URL]
    #[arg(long = "os-auth-url", value_name = "URL")]
    pub os_auth_url: Option<String>,

    /// User name [env: OS_USERNAME]
    #[arg(long = "os-username", value_name = "NAME")]
    pub os_username: Option<String>,

    /// Password [env: OS_PASSWORD]
    #[arg(long = "os-password", value_name = "PASSWORD")]
    pub os_password: Option<String>,

    /// Project name [env: OS_PROJECT_NAME]
    #[arg(long = "os-project-name", value_name = "NAME")]
    pub os_project_name: Option<String>,

    /// Project ID [env: OS_PROJECT_ID]
    #[arg(long = "os-project-id", value_name = "ID")]
    pub os_project_id: Option<String>,

    /// User's domain name [env: OS_USER_DOMAIN_NAME] (default: Default)
    #[arg(long = "os-user-domain-name", value_name = "NAME")]
    pub os_user_domain_name: Option<String>,

    /// Project's domain name [env: OS_PROJECT_DOMAIN_NAME] (default: Default)
    #[arg(long = "os-project-domain-name", value_name = "NAME")]
    pub os_project_domain_name: Option<String>,

    /// Region of the image endpoint [env: OS_REGION_NAME]
    #[arg(long = "os-region-name", value_name = "REGION")]
    pub os_region_name: Option<String>,

    /// Endpoint interface: public, internal or admin [env: OS_INTERFACE] (default: public)
    #[arg(long = "os-interface", value_name = "INTERFACE")]
    pub os_interface: Option<String>,

    /// Authentication type: password, token or applicationcredential (v3 prefixes accepted) [env: OS_AUTH_TYPE] (default: what the credentials given are)
    #[arg(long = "os-auth-type", value_name = "TYPE")]
    pub os_auth_type: Option<String>,

    /// Application credential ID [env: OS_APPLICATION_CREDENTIAL_ID]
    #[arg(long = "os-application-credential-id", value_name = "ID")]
    pub os_application_credential_id: Option<String>,

    /// Application credential name (with --os-username or OS_USER_ID) [env: OS_APPLICATION_CREDENTIAL_NAME]
    #[arg(long = "os-application-credential-name", value_name = "NAME")]
    pub os_application_credential_name: Option<String>,

    /// Application credential secret [env: OS_APPLICATION_CREDENTIAL_SECRET]
    #[arg(long = "os-application-credential-secret", value_name = "SECRET")]
    pub os_application_credential_secret: Option<String>,

    /// Cloud in clouds.yaml [env: OS_CLOUD]
    #[arg(long = "os-cloud", value_name = "NAME")]
    pub os_cloud: Option<String>,

    /// CA bundle (PEM) to verify the servers' TLS certificates; a certificate in it is trusted as is [env: OS_CACERT]
    #[arg(long = "os-cacert", value_name = "FILE")]
    pub os_cacert: Option<String>,

    /// Client certificate (PEM; may hold the key too) for registries that want one [env: OS_CERT]
    #[arg(long = "os-cert", value_name = "FILE")]
    pub os_cert: Option<String>,

    /// Private key (PEM) of --os-cert [env: OS_KEY]
    #[arg(long = "os-key", value_name = "FILE")]
    pub os_key: Option<String>,

    /// Do not verify TLS certificates
    #[arg(long = "insecure")]
    pub insecure: bool,

    /// Deadline of each request as a whole, in seconds (default 60); an upload: of each stall and of its reply
    #[arg(long = "timeout", value_name = "SECONDS")]
    pub timeout: Option<String>,

    /// How many times to retry on 5xx answers, timeouts and connection failures, announced on stderr (default 3)
    #[arg(long = "retries", value_name = "N")]
    pub retries: Option<String>,
}
