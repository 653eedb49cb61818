#!/usr/bin/env bash
# make terraform-test: format, init against the local provider mirror,
# validate and `terraform test` every module and example, then apply the
# local example for real (three regions of `meridian server` processes on
# 127.0.0.1), check that every region answers `meridian regions`, and
# destroy it. Fails, saying what is missing, where terraform or the AWS
# provider mirror is absent.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

if ! command -v terraform >/dev/null; then
	echo "terraform-test: terraform is not on PATH (Terraform >= 1.6 is needed; the CI image carries 1.11)" >&2
	exit 1
fi
mirror=${MERIDIAN_TF_MIRROR:-}
if [[ -z "$mirror" ]]; then
	provider=$(find / -name 'terraform-provider-aws_v5*' -path '*registry.terraform.io/hashicorp/aws/*' -not -path '/proc/*' 2>/dev/null | head -1 || true)
	[[ -n "$provider" ]] && mirror=${provider%/registry.terraform.io/*}
fi
if [[ -z "$mirror" || ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]]; then
	echo "terraform-test: no filesystem mirror of the AWS provider 5.x found (looked for terraform-provider-aws_v5* under a registry.terraform.io/hashicorp/aws/ folder; set MERIDIAN_TF_MIRROR to the folder holding registry.terraform.io/)" >&2
	exit 1
fi
work=$(mktemp -d)
cleanup_dirs=("$work")
trap 'rm -rf "${cleanup_dirs[@]}"' EXIT
cat >"$work/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/aws"]
  }
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
export TF_DATA_DIR # set per directory below, so the checkout stays clean

echo "== terraform fmt -check"
terraform fmt -check -recursive -diff .

for dir in modules/node-config modules/region examples/aws-three-regions examples/local; do
	echo "== $dir: init, validate, test"
	TF_DATA_DIR="$work/data-${dir//\//-}"
	(cd "$dir" && terraform init -backend=false -lockfile=readonly -no-color >/dev/null 2>"$work/init.err" || { cat "$work/init.err" >&2; exit 1; })
	(cd "$dir" && terraform validate -no-color)
	if compgen -G "$dir/tests/*.tftest.hcl" >/dev/null; then
		(cd "$dir" && terraform test -no-color)
	fi
done

echo "== examples/local: apply for real"
bin="$root/bin/meridian"
(cd "$root" && go build -o "$bin" ./cmd/meridian)
state=$(mktemp -d)
cleanup_dirs+=("$state")
TF_DATA_DIR="$work/data-examples-local"
# A base port whose 30 ports nothing listens on (the example uses 3 x 10).
base=""
for try in 27001 28001 29001 30001 31001; do
	busy=0
	for p in $(seq "$try" $((try + 29))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy=1; break; fi
	done
	if [[ $busy == 0 ]]; then base=$try; break; fi
done
[[ -n "$base" ]] || { echo "terraform-test: no free range of 30 ports from 27001 to 31030 on 127.0.0.1" >&2; exit 1; }
local_args=(-no-color -var "meridian_bin=$bin" -var "state_dir=$state" -var "base_port=$base" -state="$work/local.tfstate")
destroy() { (cd examples/local && terraform destroy -auto-approve "${local_args[@]}" >/dev/null) || echo "terraform-test: destroy failed; node pids are in $state/*/pid" >&2; }
trap 'destroy; rm -rf "${cleanup_dirs[@]}"' EXIT
(cd examples/local && terraform apply -auto-approve "${local_args[@]}")
seed=$(cd examples/local && terraform output -state="$work/local.tfstate" -raw seed_address)
regions=""
for _ in $(seq 1 60); do
	regions=$("$bin" regions --endpoint "http://$seed" --timeout 5s 2>&1 || true)
	if [[ $(grep -cE '^(eu-west|us-east|ap-south) +yes' <<<"$regions") == 3 ]]; then
		break
	fi
	sleep 1
done
echo "$regions"
if [[ $(grep -cE '^(eu-west|us-east|ap-south) +yes' <<<"$regions") != 3 ]]; then
	echo "terraform-test: the local deployment did not show three reachable regions" >&2
	for log in "$state"/*/log; do echo "--- $log"; tail -n 20 "$log"; done >&2
	exit 1
fi
"$bin" members --endpoint "http://$seed"
destroy
trap 'rm -rf "${cleanup_dirs[@]}"' EXIT
if compgen -G "$state/*/pid" >/dev/null; then
	echo "terraform-test: destroy left pid files: $(ls "$state"/*/pid)" >&2
	exit 1
fi
echo "terraform-test: ok"
