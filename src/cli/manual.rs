//! The parts of the man pages that clap's definitions do not hold: exit
//! status, environment, files, examples, notes and see-also. The man pages
//! in man/ are generated from the clap definitions plus these sections
//! (tests/man.rs), so that one place holds each text.

/// One block of a man page section.
#[derive(Debug, Clone, Copy)]
pub enum Block {
    /// A paragraph of text.
    Para(&'static str),
    /// A tagged paragraph: a bold term (a variable, a file, a status)
    /// and its description.
    Item(&'static str, &'static str),
    /// What an example does, then the command lines, shown verbatim.
    Example(&'static str, &'static str),
}

/// A section of a man page: its title (`EXIT STATUS`) and blocks.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub title: &'static str,
    pub blocks: &'static [Block],
}

use Block::{Example, Item, Para};

const EXIT_STATUS_COMMON: &[Block] = &[
    Item("0", "Success."),
    Item(
        "1",
        "The operation failed (a bad or unreadable image, an I/O error, a registry error). \
Also a qemu-img subcommand that diskforge does not implement yet (resize, rebase, ...): \
it prints \"'resize' is not implemented yet\" and does nothing.",
    ),
    Item(
        "2",
        "Usage error: an unknown flag or subcommand, a bad option value, a missing argument. \
qemu-img exits 1 for these, and so does diskforge for check, whose 2 and 3 are verdicts. \
compare exits 0 identical, 1 different, 2 on an error.",
    ),
];

const REGISTER_ENVIRONMENT: &[Block] = &[
    Para("Read by register only. A flag wins over its variable, which wins over clouds.yaml."),
    Item(
        "OS_IMAGE_URL, OS_ENDPOINT",
        "Image service endpoint (--os-image-url), used with a token.",
    ),
    Item(
        "OS_AUTH_TOKEN, OS_TOKEN",
        "Authentication token (--os-token), sent as X-Auth-Token.",
    ),
    Item(
        "OS_AUTH_URL",
        "Keystone URL for v3 password authentication (--os-auth-url).",
    ),
    Item(
        "OS_USERNAME, OS_USER_ID, OS_PASSWORD",
        "User and password for Keystone (--os-username, --os-password).",
    ),
    Item(
        "OS_PROJECT_NAME, OS_TENANT_NAME, OS_PROJECT_ID, OS_TENANT_ID",
        "Project to scope the token to (--os-project-name, --os-project-id).",
    ),
    Item(
        "OS_USER_DOMAIN_NAME, OS_USER_DOMAIN_ID, OS_PROJECT_DOMAIN_NAME, OS_PROJECT_DOMAIN_ID",
        "Domains of the user and the project (default: Default).",
    ),
    Item(
        "OS_REGION_NAME, OS_INTERFACE",
        "Which image endpoint of the service catalog to use (interface default: public).",
    ),
    Item("OS_CLOUD", "Cloud to read from clouds.yaml (--os-cloud)."),
    Item(
        "OS_CLIENT_CONFIG_FILE",
        "A clouds.yaml to read before the usual places.",
    ),
    Item("OS_CACERT", "CA bundle (PEM) for TLS (--os-cacert)."),
    Item(
        "OS_INSECURE",
        "true: do not verify TLS certificates (--insecure).",
    ),
    Item(
        "XDG_CONFIG_HOME, HOME",
        "Where the per-user clouds.yaml is looked for.",
    ),
];

const SOURCE_DATE_EPOCH: Block = Item(
    "SOURCE_DATE_EPOCH",
    "With create --reproducible: the time written into image headers (seconds since 1970; \
0 when unset).",
);

const REGISTER_FILES: &[Block] = &[
    Para(
        "register --os-cloud NAME (or OS_CLOUD) reads NAME from the first of these files that \
defines it:",
    ),
    Item("$OS_CLIENT_CONFIG_FILE", "When set."),
    Item("./clouds.yaml, ./clouds.yml", "In the current directory."),
    Item(
        "$XDG_CONFIG_HOME/openstack/clouds.yaml (~/.config/openstack/clouds.yaml), clouds.yml",
        "The user's.",
    ),
    Item(
        "/etc/openstack/clouds.yaml, /etc/openstack/clouds.yml",
        "The system's.",
    ),
];

const QEMU_IMG_NOTES: &[Block] = &[
    Para(
        "diskforge can be installed as qemu-img (a symlink or a copy named qemu-img): it then \
starts every error line with \"qemu-img: \", and --version prints \"qemu-img version 10.0.2 \
(diskforge VERSION)\", the qemu-img release whose interface it follows, so that tools which \
parse qemu-img's version (OpenStack Cinder, COT) keep working.",
    ),
    Para(
        "Of qemu-img's subcommands, diskforge implements create, info, map, compare, check and convert \
(to raw). The others (amend, bench, bitmap, commit, dd, measure, rebase, resize, snapshot) \
fail with \"'NAME' is not implemented yet\" and do nothing; see EXIT STATUS.",
    ),
];

const DISKFORGE_PAGE: &[Section] = &[
    Section {
        title: "QEMU-IMG COMPATIBILITY",
        blocks: QEMU_IMG_NOTES,
    },
    Section {
        title: "EXIT STATUS",
        blocks: EXIT_STATUS_COMMON,
    },
    Section {
        title: "ENVIRONMENT",
        blocks: &[
            SOURCE_DATE_EPOCH,
            Item(
                "OS_*",
                "OpenStack credentials and endpoints for register: see diskforge-register(1).",
            ),
        ],
    },
    Section {
        title: "FILES",
        blocks: &[Item(
            "clouds.yaml",
            "Cloud settings for register (./, ~/.config/openstack, /etc/openstack): see \
diskforge-register(1).",
        )],
    },
    Section {
        title: "EXAMPLES",
        blocks: &[
            Example(
                "Create a 10 GiB qcow2 image and describe it as JSON:",
                "diskforge create -f qcow2 disk.qcow2 10G\ndiskforge info --output=json disk.qcow2",
            ),
            Example(
                "Use diskforge where tools call qemu-img:",
                "ln -s /usr/local/bin/diskforge /usr/local/bin/qemu-img\nqemu-img --version",
            ),
            Example(
                "Register and upload an image to Glance:",
                "diskforge register --os-cloud mycloud --upload --name 'my disk' disk.qcow2",
            ),
        ],
    },
    Section {
        title: "SEE ALSO",
        blocks: &[Para(
            "diskforge-create(1), diskforge-info(1), diskforge-register(1), qemu-img(1)",
        )],
    },
];

const CREATE_PAGE: &[Section] = &[
    Section {
        title: "EXIT STATUS",
        blocks: EXIT_STATUS_COMMON,
    },
    Section {
        title: "ENVIRONMENT",
        blocks: &[SOURCE_DATE_EPOCH],
    },
    Section {
        title: "FILES",
        blocks: &[
            Item(
                "FILENAME",
                "Created, or truncated when it exists. On failure, a file that this run \
created is removed.",
            ),
            Item(
                "FILENAME-sNNN.vmdk, FILENAME-fNNN.vmdk, FILENAME-flat.vmdk",
                "The extent files of the vmdk subformats twoGbMaxExtentSparse, \
twoGbMaxExtentFlat and monolithicFlat, written beside the descriptor FILENAME (the name \
without its .vmdk suffix, as qemu-img names them).",
            ),
            Item(
                "BACKING_FILE",
                "Read (unless -u) to take its size and check its format; a relative name is \
relative to the directory of FILENAME.",
            ),
        ],
    },
    Section {
        title: "EXAMPLES",
        blocks: &[
            Example(
                "A sparse raw image and a qcow2 image of 10 GiB:",
                "diskforge create disk.img 10G\ndiskforge create -f qcow2 disk.qcow2 10G",
            ),
            Example(
                "An overlay on a base image (its size taken from the base):",
                "diskforge create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2",
            ),
            Example(
                "qcow2 options, and the list of a format's options:",
                "diskforge create -f qcow2 -o cluster_size=2M,preallocation=metadata big.qcow2 1T\n\
diskforge create -f qcow2 -o help",
            ),
            Example(
                "A fixed VHD that Azure accepts (virtual size a whole number of MiB):",
                "diskforge create -f vpc -o subformat=fixed,force_size=on azure.vhd 30G",
            ),
            Example(
                "A VMware stream-optimized disk, byte-identical on every run:",
                "SOURCE_DATE_EPOCH=0 diskforge create --reproducible -f vmdk \\\n    -o subformat=streamOptimized disk.vmdk 20G",
            ),
        ],
    },
    Section {
        title: "NOTES",
        blocks: &[Para(
            "Azure accepts only fixed VHDs whose virtual size is a whole number of MiB. \
Without force_size, a fixed VHD's size is rounded up to its CHS geometry, as qemu-img does; \
use -o force_size=on with a size in whole MiB to keep the size exact.",
        )],
    },
    Section {
        title: "SEE ALSO",
        blocks: &[Para("diskforge(1), diskforge-info(1), qemu-img(1)")],
    },
];

const INFO_PAGE: &[Section] = &[
    Section {
        title: "EXIT STATUS",
        blocks: EXIT_STATUS_COMMON,
    },
    Section {
        title: "ENVIRONMENT",
        blocks: &[Para("info reads no environment variables.")],
    },
    Section {
        title: "FILES",
        blocks: &[
            Item("FILENAME", "Read only; never written."),
            Item(
                "backing files, vmdk extent files",
                "The files that FILENAME names (a relative name is relative to the directory \
of FILENAME) are opened to describe the chain (--backing-chain) and a vmdk's extents.",
            ),
        ],
    },
    Section {
        title: "EXAMPLES",
        blocks: &[
            Example("Describe an image:", "diskforge info disk.qcow2"),
            Example(
                "The whole backing chain as a JSON array:",
                "diskforge info --backing-chain --output=json overlay.qcow2",
            ),
            Example(
                "Read a fixed VHD as vpc rather than raw:",
                "diskforge info -f vpc disk.vhd",
            ),
        ],
    },
    Section {
        title: "SEE ALSO",
        blocks: &[Para("diskforge(1), diskforge-create(1), qemu-img(1)")],
    },
];

/// `diskforge register` side by side with `openstack image create` (the
/// README's table, briefly).
const REGISTER_VS_OPENSTACK: &[Block] = &[
    Item(
        "Same",
        "--file FILE NAME, --id, --min-disk, --min-ram, --public, --private, --community, \
--shared, --protected, --unprotected, --property KEY=VALUE, --tag, --progress, -f and -c, -v, \
--debug, -q, and the --os-* authentication flags (--os-cloud, --os-auth-url, --os-auth-type, \
--os-token, --os-username, --os-password, --os-project-name, --os-project-id, the domain names, \
--os-region-name, --os-interface, --os-application-credential-*, --os-cacert, --os-cert, \
--os-key, --insecure) with their OS_* variables.",
    ),
    Item(
        "Different",
        "The positional is the image file unless --file is given (then it is the name, as in \
openstack). --disk-format defaults to the format detected in the file, not raw, and is checked \
against it. --container-format (default bare) is not limited to a list: the registry judges it. \
The progress bar is on by default on a terminal. --api glance-v2|glance-v1|ims stands for \
--os-image-api-version.",
    ),
    Item(
        "Missing",
        "Image data on stdin, --size, --project and --project-domain, --import, --volume and \
--force, --sign-key-path and --sign-cert-id, the table and json options (--noindent, --prefix, \
--max-width, --fit-width, --print-empty).",
    ),
    Item(
        "diskforge only",
        "--name, --visibility, --upload, --force-disk-format, --os-version (IMS), \
--os-image-url (as the glance client names it), --keep-on-failure, --dry-run, --output, \
--timeout, --retries.",
    ),
];

const REGISTER_PAGE: &[Section] = &[
    Section {
        title: "EXIT STATUS",
        blocks: &[
            Item(
                "0",
                "The image is registered (and uploaded and verified, with --upload).",
            ),
            Item(
                "1",
                "The registry refused the request or could not be reached, or the checksums it \
reports differ from the ones computed while sending.",
            ),
            Item(
                "2",
                "Usage error: an unknown flag, an invalid value (checked before anything is \
sent), missing credentials.",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        blocks: REGISTER_ENVIRONMENT,
    },
    Section {
        title: "FILES",
        blocks: REGISTER_FILES,
    },
    Section {
        title: "EXAMPLES",
        blocks: &[
            Example(
                "Register and upload with a token and an image endpoint:",
                "OS_IMAGE_URL=http://glance:9292 OS_AUTH_TOKEN=... \\\n    diskforge register --upload --name 'my disk' --private disk.qcow2",
            ),
            Example(
                "With Keystone password authentication, from a clouds.yaml entry:",
                "diskforge register --os-cloud mycloud --upload --property os_distro=ubuntu disk.qcow2",
            ),
            Example(
                "See the requests without sending them:",
                "diskforge register --dry-run --os-image-url http://glance:9292 --os-token x disk.qcow2",
            ),
        ],
    },
    Section {
        title: "COMPARED WITH OPENSTACK IMAGE CREATE",
        blocks: REGISTER_VS_OPENSTACK,
    },
    Section {
        title: "SEE ALSO",
        blocks: &[Para("diskforge(1), openstack(1)")],
    },
];

/// The extra sections of the man page of `subcommand` (`None`: the
/// diskforge(1) page itself), in the order they are printed after the
/// options.
pub fn sections(subcommand: Option<&str>) -> &'static [Section] {
    match subcommand {
        None => DISKFORGE_PAGE,
        Some("create") => CREATE_PAGE,
        Some("info") => INFO_PAGE,
        Some("register") => REGISTER_PAGE,
        Some(_) => &[],
    }
}
