// heliosGate: the Helios CI gate as a Jenkins shared-library step (docs/ci.md, "Jenkins").
// Load this repository as a shared library (Manage Jenkins > System > Global Trusted Pipeline
// Libraries, name `helios`), then in a Jenkinsfile:
//
//   @Library('helios') _
//   withCredentials([usernamePassword(credentialsId: 'lacework', usernameVariable: 'LW_API_KEY',
//                                     passwordVariable: 'LW_API_SECRET')]) {
//     heliosGate image: "registry.example.com/shop/web@${env.DIGEST}", ci: [pipeline: 'build']
//   }
//
// Arguments (a map): image (required); policy, data (lists of paths); scanFile; ci (a map,
// passed as input.ci; build and job are always passed); args (a list of more `helios gate`
// arguments, e.g. ['--no-resolve']); failOn: 'deny' (default: a denied image fails the build) or
// 'never' (the build is marked UNSTABLE instead); helios: the binary (default `helios` on PATH);
// dir: where the artifacts go (default `helios-report`).
// It archives helios.json (the decision and the exact policy input) and helios.sarif, publishes
// helios.xml as a JUnit report, and returns helios gate's exit code (0 allowed, 1 denied, 2
// could not decide; 2 always fails the build).
def call(Map args = [:]) {
    String image = args.image ?: error('heliosGate: the image argument is required')
    String failOn = args.failOn ?: 'deny'
    if (!(failOn in ['deny', 'never'])) {
        error("heliosGate: failOn must be 'deny' or 'never', not '${failOn}'")
    }
    String dir = args.dir ?: 'helios-report'
    List cmd = [args.helios ?: 'helios', 'gate', image,
                '--artifact', "${dir}/helios.json", '--artifact', "${dir}/helios.sarif",
                '--artifact', "${dir}/helios.xml"]
    (args.policy ?: []).each { cmd += ['--policy', it as String] }
    (args.data ?: []).each { cmd += ['--data', it as String] }
    if (args.scanFile) {
        cmd += ['--scan-file', args.scanFile as String]
    }
    Map ci = [build: env.BUILD_NUMBER, job: env.JOB_NAME] + (args.ci ?: [:])
    ci.findAll { k, v -> v != null }.each { k, v -> cmd += ['--ci', "${k}=${v}"] }
    cmd += (args.args ?: []).collect { it as String }

    int code = sh(script: "mkdir -p ${quote(dir)} && ${cmd.collect { quote(it as String) }.join(' ')}",
                  returnStatus: true)
    archiveArtifacts(artifacts: "${dir}/helios.json,${dir}/helios.sarif", allowEmptyArchive: true)
    junit(testResults: "${dir}/helios.xml", allowEmptyResults: true)
    if (code == 1 && failOn == 'never') {
        unstable("helios: ${image} is denied by policy (failOn: never)")
    } else if (code == 1) {
        error("helios: ${image} is denied by policy")
    } else if (code != 0) {
        error("helios: could not decide on ${image} (exit ${code})")
    }
    return code
}

/** One shell word, single-quoted. */
String quote(String word) {
    return "'" + word.replace("'", "'\\''") + "'"
}
