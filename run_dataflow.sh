#!/usr/bin/env bash
# Submits the FILM interpolation job to Google Cloud Dataflow.
#
#   ./run_dataflow.sh --project PROJECT --bucket BUCKET --input gs://BUCKET/archive \
#       --output gs://BUCKET/interpolated [options]
#   ./run_dataflow.sh --dry_run --project demo --region us-central1 \
#       --temp_location gs://demo/tmp --input gs://demo/in --output gs://demo/out
#
# Options (flag, or environment variable):
#   --project P            PROJECT (or GOOGLE_CLOUD_PROJECT)   GCP project
#   --region R             REGION (default us-central1)        Dataflow region
#   --bucket B             BUCKET                              temp/staging: gs://B/dataflow/{tmp,staging}
#   --machine_type T       MACHINE_TYPE (default n1-standard-8; with --gpu one that carries
#                          one such GPU: n1 for T4/P4/P100/V100, g2-standard-8 for nvidia-l4,
#                          a2-highgpu-1g for nvidia-tesla-a100, a2-ultragpu-1g for
#                          nvidia-a100-80gb; required for other GPU types)
#   --max_workers N        MAX_WORKERS (default 10)
#   --gpu TYPE             GPU, e.g. nvidia-tesla-t4, nvidia-l4 (default: CPU workers)
#   --gpu_count N          GPU_COUNT (1, the default, only: a worker uses one GPU)
#   --sdk_container_image I  SDK_CONTAINER_IMAGE: worker image (required with --gpu: one with
#                          the CUDA build of TensorFlow, see Dockerfile.worker). Its Beam and
#                          Python must be the launcher's: IMAGE_BEAM_VERSION, IMAGE_PYTHON_VERSION
#                          (default: Dockerfile.worker's FROM line) are checked against them.
#   --job_name NAME        JOB_NAME (default film-interpolate-<UTC time>; a CI server's own
#                          JOB_NAME that Dataflow would refuse is named as the environment's)
#   (--worker_machine_type and --max_num_workers, Beam's names, are taken for --machine_type and
#   --max_workers; --worker_harness_container_image, its old name, for --sdk_container_image)
#   --dry_run              build the whole job offline, print its steps, submit nothing
#                          (--dry_run=VALUE or --dry_run VALUE: true/false, 1/0, yes/no)
# Every other flag passes through to the pipeline (python -m pipeline.run --help) and Beam; paths
# in them are read from the folder the script is run in.
set -euo pipefail

src=${BASH_SOURCE[0]}
while [ -L "$src" ]; do  # called through a link (on PATH); older macOS has no `readlink -f`
  dir=$(cd "$(dirname "$src")" && pwd); src=$(readlink "$src"); [[ $src == /* ]] || src=$dir/$src
done
here=$(cd "$(dirname "$src")" && pwd)
PYTHON=${PYTHON:-$( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3)}
PROJECT=${PROJECT:-${GOOGLE_CLOUD_PROJECT:-}}
REGION=${REGION:-us-central1}
BUCKET=${BUCKET:-}
MACHINE_TYPE=${MACHINE_TYPE:-}
MAX_WORKERS=${MAX_WORKERS:-10}
GPU=${GPU:-}
GPU_COUNT=${GPU_COUNT:-1}
SDK_CONTAINER_IMAGE=${SDK_CONTAINER_IMAGE:-}
job_name_from_env=${JOB_NAME:+1}  # (CI servers, Jenkins for one, set a JOB_NAME of their own)
JOB_NAME=${JOB_NAME:-film-interpolate-$(date -u +%Y%m%d-%H%M%S)}
DRY_RUN=0
passthrough=()

need_value() {
  [ $# -ge 2 ] && [[ "$2" != --* ]] || { echo "run_dataflow.sh: $1 needs a value" >&2; exit 2; }
}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run)  # a value may follow, as pipeline.run reads `--dry_run false`
      DRY_RUN=1
      if [ $# -ge 2 ]; then
        case "$(printf %s "$2" | tr '[:upper:]' '[:lower:]')" in
          1|true|yes) shift ;;
          0|false|no) DRY_RUN=0; shift ;;
        esac
      fi ;;
    --dry_run=*)  # as pipeline.run reads it; anything else must not become a real submission
      case "$(printf %s "${1#*=}" | tr '[:upper:]' '[:lower:]')" in
        1|true|yes) DRY_RUN=1 ;;
        0|false|no) DRY_RUN=0 ;;
        *) echo "run_dataflow.sh: --dry_run=${1#*=}: give true or false (1/0, yes/no)" >&2; exit 2 ;;
      esac ;;
    --project|--region|--bucket|--machine_type|--worker_machine_type|--max_workers|--max_num_workers|--gpu|--gpu_count|--sdk_container_image|--worker_harness_container_image|--job_name)
      need_value "$@"; set -- "$1=$2" "${@:3}"; continue ;;
    --project=*) PROJECT=${1#*=} ;;
    --region=*) REGION=${1#*=} ;;
    --bucket=*) BUCKET=${1#*=} ;;
    --machine_type=*|--worker_machine_type=*) MACHINE_TYPE=${1#*=} ;;
    --max_workers=*|--max_num_workers=*) MAX_WORKERS=${1#*=} ;;
    --gpu=*) GPU=${1#*=} ;;
    --gpu_count=*) GPU_COUNT=${1#*=} ;;
    --sdk_container_image=*|--worker_harness_container_image=*) SDK_CONTAINER_IMAGE=${1#*=} ;;
    --job_name=*) JOB_NAME=${1#*=}; job_name_from_env= ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) passthrough+=("$1") ;;
  esac
  shift
done

[ -n "$PROJECT" ] || { echo "run_dataflow.sh: set --project or PROJECT" >&2; exit 2; }
if [ -n "$job_name_from_env" ] && ! [[ "$JOB_NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]]; then
  echo "run_dataflow.sh: the environment's JOB_NAME ($JOB_NAME) is no Dataflow job name" \
       "(lowercase letters, digits, hyphens): pass --job_name, or unset JOB_NAME for one made" \
       "of the time" >&2
  exit 2
fi
[[ "$MAX_WORKERS" =~ ^[1-9][0-9]*$ ]] || {
  echo "run_dataflow.sh: --max_workers $MAX_WORKERS: give a whole number of workers, 1 or more" >&2
  exit 2; }
BUCKET=${BUCKET#gs://}; BUCKET=${BUCKET%/}
# One SDK process per GPU worker loads the model once, on the worker's first GPU: more GPUs per
# worker would sit idle, so a job scales with workers.
if [ -n "$GPU" ] && [ "$GPU_COUNT" != 1 ]; then
  echo "run_dataflow.sh: --gpu_count $GPU_COUNT: each worker runs the model on one GPU (one SDK" \
       "process); raise --max_workers for more GPUs" >&2
  exit 2
fi
# Dataflow attaches L4 GPUs to G2 machines only and A100s to A2 only; T4, P4, P100 and V100
# go on N1. Each machine type below carries exactly one of its GPU.
several=''
case "$GPU" in
  "") one_gpu='.*'; default_machine=n1-standard-8 ;;
  nvidia-tesla-t4|nvidia-tesla-p4|nvidia-tesla-p100|nvidia-tesla-v100)
    one_gpu='n1-.*'; default_machine=n1-standard-8 ;;
  nvidia-l4) one_gpu='g2-standard-(4|8|12|16|32)'; default_machine=g2-standard-8 ;;
  nvidia-tesla-a100) one_gpu='a2-highgpu-1g'; default_machine=a2-highgpu-1g ;;
  nvidia-a100-80gb) one_gpu='a2-ultragpu-1g'; default_machine=a2-ultragpu-1g ;;
  *[A-Z]*) echo "run_dataflow.sh: --gpu $GPU: Dataflow's GPU types are lowercase, e.g." \
              "nvidia-l4" >&2
     exit 2 ;;
  # Other types: a machine type named for several GPUs (a2-highgpu-2g, a3-highgpu-8g) is none,
  # and of G4's (RTX PRO 6000) only g4-standard-48 carries one (96, 192, 384: 2, 4, 8).
  *) one_gpu='.*-1g|.*[^g]|.*[^0-9]g'; several='g4-standard-(96|192|384)'; default_machine=
     [ -n "$MACHINE_TYPE" ] || {
       echo "run_dataflow.sh: --gpu $GPU: pass --machine_type, one that carries one such GPU" >&2
       exit 2; } ;;
esac
MACHINE_TYPE=${MACHINE_TYPE:-$default_machine}
if ! [[ "$MACHINE_TYPE" =~ ^($one_gpu)$ ]] ||
   { [ -n "$several" ] && [[ "$MACHINE_TYPE" =~ ^($several)$ ]]; }; then
  example=${default_machine:+ (e.g. $default_machine)}
  echo "run_dataflow.sh: --gpu $GPU needs a machine type that carries one$example, not" \
       "$MACHINE_TYPE" >&2
  exit 2
fi
args=(--runner=DataflowRunner "--project=$PROJECT" "--region=$REGION" "--job_name=$JOB_NAME"
      "--machine_type=$MACHINE_TYPE" "--max_num_workers=$MAX_WORKERS")
# (pipeline.run adds what every Dataflow job of it needs, `launch.equip_the_workers`: the code as
# an sdist of setup.py, TensorFlow where no --sdk_container_image brings it, one SDK process per
# worker.)
has_flag() { local f; for f in "${passthrough[@]+"${passthrough[@]}"}"; do case "$f" in "$1"|"$1"=*) return 0 ;; esac; done; return 1; }
if has_flag --runner; then  # Beam takes the last: the archive would run on this machine
  echo "run_dataflow.sh: --runner: this script submits to Dataflow; for a local run use" \
       "python -m pipeline.run" >&2
  exit 2
fi
if [ -n "$BUCKET" ]; then
  has_flag --temp_location || args+=("--temp_location=gs://$BUCKET/dataflow/tmp")
  has_flag --staging_location || args+=("--staging_location=gs://$BUCKET/dataflow/staging")
elif ! has_flag --temp_location; then
  echo "run_dataflow.sh: set --bucket/BUCKET or pass --temp_location gs://..." >&2; exit 2
fi
if [ -n "$GPU" ]; then
  args+=("--dataflow_service_options=worker_accelerator=type:$GPU;count:$GPU_COUNT;install-nvidia-driver")
  if [ -z "$SDK_CONTAINER_IMAGE" ]; then  # (a dry run too: it vouches for the real command)
    echo "run_dataflow.sh: --gpu needs --sdk_container_image with the CUDA build of TensorFlow" \
         "(see Dockerfile.worker)" >&2
    exit 2
  fi
fi
if [ -n "$SDK_CONTAINER_IMAGE" ]; then
  # A custom image must hold the launcher's Beam SDK and Python (Dataflow's custom-container
  # rule); pip may have given the launcher another Beam than the image's.
  from_line=$(sed -n 's/^FROM apache\/beam_python\([0-9.]*\)_sdk:\([^ ]*\).*/\1 \2/p' \
              "$here/Dockerfile.worker")
  image_python=${IMAGE_PYTHON_VERSION:-${from_line% *}}
  image_beam=${IMAGE_BEAM_VERSION:-${from_line#* }}
  launcher=$("$PYTHON" -c 'import sys, apache_beam
print("%d.%d" % sys.version_info[:2], apache_beam.__version__)')
  if [ "$launcher" != "$image_python $image_beam" ]; then
    echo "run_dataflow.sh: the launcher runs Python ${launcher% *} with Beam ${launcher#* }, the" \
         "worker image Python $image_python with Beam $image_beam (Dockerfile.worker, or" \
         "IMAGE_PYTHON_VERSION/IMAGE_BEAM_VERSION); they must be equal: install" \
         "apache-beam[gcp]==$image_beam for the launcher (requirements-dev.txt pins it), or build" \
         "the image FROM apache/beam_python${launcher% *}_sdk:${launcher#* }" >&2
    exit 2
  fi
  args+=("--sdk_container_image=$SDK_CONTAINER_IMAGE")
fi
[ "$DRY_RUN" = 1 ] && args+=(--dry_run=True)

# Run from the caller's folder, so that relative paths in flags passed through
# (--requirements_file, --extra_package, ...) are theirs, with this checkout first on the path
# in place of that folder (`python -m` would put the folder first: a pipeline/ of its own there
# would be run instead).
exec "$PYTHON" -c 'import runpy, sys
sys.path[0] = sys.argv.pop(1)
runpy.run_module("pipeline.run", run_name="__main__", alter_sys=True)' \
  "$here" "${args[@]}" "${passthrough[@]+"${passthrough[@]}"}"
