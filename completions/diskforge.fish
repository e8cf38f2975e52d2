# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_diskforge_global_optspecs
    string join \n h/help V/version
end

function __fish_diskforge_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_diskforge_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_diskforge_using_subcommand
    set -l cmd (__fish_diskforge_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c diskforge -n "__fish_diskforge_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diskforge -n "__fish_diskforge_needs_command" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "create" -d 'Create a new disk image (qemu-img create)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "info" -d 'Display information about a disk image (qemu-img info)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "register" -d 'Register an image with OpenStack Glance or Huawei Cloud IMS (and upload it)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "map" -d 'Dump the metadata of an image (qemu-img map)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "compare" -d 'Check whether two images have the same content (qemu-img compare)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "check" -d 'Check an image for consistency (qemu-img check)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "convert" -d 'Convert one or more images into a new image (qemu-img convert)'
complete -c diskforge -n "__fish_diskforge_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s f -l format -d 'Image format: raw, qcow2, qcow, vmdk, vdi, vpc (or vhd)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s o -l options -d 'Format options, comma-separated key=value (repeatable; `-o help` lists them)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s b -l backing -d 'Backing file the new image is stacked on' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s F -l backing-format -d 'Format of the backing file' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -l object -d 'QEMU object definition: refused (diskforge writes no encrypted images, so it needs no secret objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s q -l quiet -d 'Quiet: do not print the `Formatting ...` line or a progress bar'
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s u -l backing-unsafe -d 'Do not open the backing file (its size is then not read)'
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -l reproducible -d 'Byte-identical output for identical arguments: no random UUIDs or CIDs, timestamps from SOURCE_DATE_EPOCH (or zero)'
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diskforge -n "__fish_diskforge_using_subcommand create" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -s f -l format -d 'Image format: raw, qcow2, qcow, vmdk, vdi, vpc (or vhd); detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -l output -d 'Output format' -r -f -a "human\t''
json\t''"
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -l object -d 'QEMU object definition (accepted for compatibility; diskforge has no objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -s b -l backing-chain -d 'Also describe the backing images, down to the base'
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -s U -l force-share -d 'Open the image in shared mode: read it even while another process (a VM) writes it, without taking or checking locks'
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -l image-opts -d 'FILENAME is an option string (not supported by diskforge)'
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diskforge -n "__fish_diskforge_using_subcommand info" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l file -d 'Upload this file\'s data (as `openstack image create --file`); implies --upload' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l api -d 'Registry API: glance-v2, glance-v1 or ims' -r -f -a "glance-v2\t'OpenStack Glance Image API v2 (JSON record, then PUT .../file)'
glance-v1\t'The legacy Image API v1 (x-image-meta-* headers, data in the POST body)'
ims\t'Huawei Cloud IMS, "Creating Image Metadata (Native OpenStack API)"'"
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l name -d 'Image name (default: the file name)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l id -d 'Image ID to reserve (a UUID)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l disk-format -d 'Disk format (default: detected: qcow2, vmdk, vdi, vhd, vhdx, ploop, raw); checked against the file and the registry\'s list' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l container-format -d 'Container format (default: bare)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l visibility -d 'Visibility: public, private, shared or community (default: the registry\'s)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l min-disk -d 'Minimum disk size needed to boot the image, in gigabytes' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l min-ram -d 'Minimum RAM needed to boot the image, in megabytes' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l tag -d 'Tag to add (repeatable; IMS wants KEY=VALUE)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l property -d 'Extra property KEY=VALUE (repeatable)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-version -d 'IMS operating system version (sent as __os_version)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l output -d 'Print the final image record as human or json' -r -f -a "human\t''
json\t''"
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s f -l format -d 'Print the record as openstackclient does: json, yaml, value, shell or table' -r -f -a "json\t''
yaml\t''
value\t''
shell\t''
table\t''"
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s c -l column -d 'Print only this field of the record (repeatable), e.g. -f value -c id' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-image-url -d 'Image service endpoint, unversioned [env: OS_IMAGE_URL]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-token -d 'Authentication token [env: OS_AUTH_TOKEN, OS_TOKEN]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-auth-url -d 'Keystone URL [env: OS_AUTH_URL]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-username -d 'User name [env: OS_USERNAME]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-password -d 'Password [env: OS_PASSWORD]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-project-name -d 'Project name [env: OS_PROJECT_NAME]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-project-id -d 'Project ID [env: OS_PROJECT_ID]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-user-domain-name -d 'User\'s domain name [env: OS_USER_DOMAIN_NAME] (default: Default)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-project-domain-name -d 'Project\'s domain name [env: OS_PROJECT_DOMAIN_NAME] (default: Default)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-region-name -d 'Region of the image endpoint [env: OS_REGION_NAME]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-interface -d 'Endpoint interface: public, internal or admin [env: OS_INTERFACE] (default: public)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-auth-type -d 'Authentication type: password, token or applicationcredential (v3 prefixes accepted) [env: OS_AUTH_TYPE] (default: what the credentials given are)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-application-credential-id -d 'Application credential ID [env: OS_APPLICATION_CREDENTIAL_ID]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-application-credential-name -d 'Application credential name (with --os-username or OS_USER_ID) [env: OS_APPLICATION_CREDENTIAL_NAME]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-application-credential-secret -d 'Application credential secret [env: OS_APPLICATION_CREDENTIAL_SECRET]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-cloud -d 'Cloud in clouds.yaml [env: OS_CLOUD]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-cacert -d 'CA bundle (PEM) to verify the servers\' TLS certificates; a certificate in it is trusted as is [env: OS_CACERT]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-cert -d 'Client certificate (PEM; may hold the key too) for registries that want one [env: OS_CERT]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l os-key -d 'Private key (PEM) of --os-cert [env: OS_KEY]' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l timeout -d 'Deadline of each request as a whole, in seconds (default 60); an upload: of each stall and of its reply' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l retries -d 'How many times to retry on 5xx answers, timeouts and connection failures, announced on stderr (default 3)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l upload -d 'Upload the image data after creating the record, then verify checksums'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l force-disk-format -d 'Send --disk-format as given: even when it contradicts the file\'s detected format or is not in the registry\'s list'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l public -d 'Image is accessible to all projects (admin only)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l private -d 'Image is accessible only to the owner'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l shared -d 'Image can be shared with other projects'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l community -d 'Image is accessible to all projects but not listed'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l protected -d 'Prevent the image from being deleted'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l unprotected -d 'Allow the image to be deleted (default)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l progress -d 'Show a progress bar while uploading (the default on a terminal)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s q -l quiet -d 'Quiet: no progress bar'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l keep-on-failure -d 'Keep the image record when the upload fails (default: delete it if still queued or saving)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l dry-run -d 'Print the requests that would be sent (token and password redacted); send nothing'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s v -l verbose -d 'Log each request and response status on stderr (twice: as --debug)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l debug -d 'Log requests and responses with headers and JSON bodies (secrets redacted)'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -l insecure -d 'Do not verify TLS certificates'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diskforge -n "__fish_diskforge_using_subcommand register" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s f -l format -d 'Image format: raw, qcow2, qcow, vmdk, vdi, vpc (or vhd); detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -l output -d 'Output format' -r -f -a "human\t''
json\t''"
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s s -l start-offset -d 'Start at this guest offset (bytes, or with k, M, G, T, P, E suffix)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s l -l max-length -d 'Map at most this many bytes (bytes, or with a suffix)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -l object -d 'QEMU object definition (accepted for compatibility; diskforge has no objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s U -l force-share -d 'Open the image in shared mode (accepted; diskforge never locks)'
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -l image-opts -d 'FILENAME is an option string (not supported by diskforge)'
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s h -l help -d 'Print help'
complete -c diskforge -n "__fish_diskforge_using_subcommand map" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s f -l a-format -d 'Format of the first image; detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s F -l b-format -d 'Format of the second image; detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s T -l source-cache -d 'Cache mode (accepted; diskforge reads through the page cache)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -l object -d 'QEMU object definition (accepted for compatibility; diskforge has no objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s s -l strict -d 'Strict mode: fail on a size mismatch or a different allocation state'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s q -l quiet -d 'Quiet: print nothing, only the exit status says the result'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s p -l progress -d 'Show progress'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s U -l force-share -d 'Open the images in shared mode (accepted; diskforge never locks)'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -l image-opts -d 'The file names are option strings (not supported by diskforge)'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s h -l help -d 'Print help'
complete -c diskforge -n "__fish_diskforge_using_subcommand compare" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s f -l format -d 'Image format; detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -l output -d 'Output format: human or json' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s r -l repair -d 'Repair: leaks (leaked clusters only) or all' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s T -l cache -d 'Cache mode (accepted; diskforge reads through the page cache)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -l object -d 'QEMU object definition (accepted for compatibility; diskforge has no objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s q -l quiet -d 'Quiet: print nothing on standard output'
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s U -l force-share -d 'Open the image in shared mode (accepted; diskforge never locks)'
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -l image-opts -d 'The file name is an option string (not supported by diskforge)'
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s h -l help -d 'Print help'
complete -c diskforge -n "__fish_diskforge_using_subcommand check" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s f -l format -d 'Source format (for every source); detected when absent' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s O -l output-format -d 'Output format (implemented: raw)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s o -l options -d 'Output format options, comma-separated key=value (repeatable)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s S -l sparse-size -d 'Sparse granularity: zero runs this long become holes (default 4k; 0 allocates everything)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s m -l parallel -d 'Number of parallel readers (1 to 16, default 8)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s t -l target-cache -d 'Target cache mode (accepted; diskforge writes through the page cache and flushes at the end)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s T -l source-cache -d 'Source cache mode (accepted; diskforge reads through the page cache)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -l object -d 'QEMU object definition (accepted for compatibility; diskforge has no objects)' -r
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s W -l out-of-order -d 'Allow out-of-order writes (accepted; diskforge writes in order, as fast)'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s n -l no-create -d 'Do not create OUTPUT: write into the existing image'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -l target-is-zero -d 'With -n: the target reads as zeros already, zero areas are not written'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s p -l progress -d 'Show progress (qemu-img\'s `    (NN.NN/100%)` text on stdout)'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s q -l quiet -d 'Quiet: print nothing (no progress)'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s U -l force-share -d 'Open the sources in shared mode (no lock conflict with a VM)'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c diskforge -n "__fish_diskforge_using_subcommand convert" -s V -l version -d 'Print version'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "create" -d 'Create a new disk image (qemu-img create)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "info" -d 'Display information about a disk image (qemu-img info)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "register" -d 'Register an image with OpenStack Glance or Huawei Cloud IMS (and upload it)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "map" -d 'Dump the metadata of an image (qemu-img map)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "compare" -d 'Check whether two images have the same content (qemu-img compare)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "check" -d 'Check an image for consistency (qemu-img check)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "convert" -d 'Convert one or more images into a new image (qemu-img convert)'
complete -c diskforge -n "__fish_diskforge_using_subcommand help; and not __fish_seen_subcommand_from create info register map compare check convert help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
