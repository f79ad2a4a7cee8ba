"""The app package: a good one validates; a broken template, zip or id is refused, naming the
field; the version follows the content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from manifest.build import (
    COLOR_ICON_FILE,
    OUTLINE_ICON_FILE,
    TEMPLATE_FILE,
    VERSION_FILE,
    Sources,
    build_package,
    content_hash,
    load_template,
    read_version,
)
from manifest.validate import SCHEMA_URL, SCHEMA_VERSION, PackageError, validate_package
from tests.manifest.conftest import (
    APP_ID,
    HOST,
    TEAMS_APP_ID,
    EditTemplate,
    make_details,
    write_zip,
    zip_contents,
)


def test_a_good_package_has_three_files_at_its_root_and_validates(
    tmp_path: Path, sources: Sources
) -> None:
    result = build_package(make_details(), tmp_path / "app.zip", sources)

    files = zip_contents(result.path)
    assert sorted(files) == ["color.png", "manifest.json", "outline.png"]
    assert files["color.png"] == COLOR_ICON_FILE.read_bytes()
    assert files["outline.png"] == OUTLINE_ICON_FILE.read_bytes()
    manifest = validate_package(result.path, schema_file=sources.schema)
    assert manifest == json.loads(files["manifest.json"])
    assert manifest == result.manifest


def test_the_manifest_is_filled_from_the_deployment(tmp_path: Path, sources: Sources) -> None:
    manifest = build_package(make_details(), tmp_path / "app.zip", sources).manifest

    assert (manifest["$schema"], manifest["manifestVersion"]) == (SCHEMA_URL, SCHEMA_VERSION)
    assert manifest["id"] == TEAMS_APP_ID
    assert manifest["developer"] == {
        "name": "Contoso Facilities",
        "websiteUrl": "https://contoso.com/frontdesk",
        "privacyUrl": "https://contoso.com/privacy",
        "termsOfUseUrl": "https://contoso.com/terms",
    }
    bot = manifest["bots"][0]
    assert bot["botId"] == APP_ID
    assert sorted(bot["scopes"]) == ["groupChat", "personal", "team"]
    assert (bot["supportsFiles"], bot["isNotificationOnly"]) == (False, False)
    assert manifest["webApplicationInfo"] == {
        "id": APP_ID,
        "resource": f"api://{HOST}/botid-{APP_ID}",
    }
    assert sorted(manifest["validDomains"]) == sorted([HOST, "token.botframework.com"])
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}
    assert "{{" not in json.dumps(manifest)


def test_the_same_content_gives_the_same_zip(tmp_path: Path, sources: Sources) -> None:
    first = build_package(make_details(), tmp_path / "one.zip", sources)
    second = build_package(make_details(), tmp_path / "two.zip", sources)

    assert first.path.read_bytes() == second.path.read_bytes()


def _drop_developer(m: dict[str, Any]) -> None:
    del m["developer"]


def _bot_id_number(m: dict[str, Any]) -> None:
    m["bots"][0]["botId"] = 42


def _app_id_not_a_guid(m: dict[str, Any]) -> None:
    m["id"] = "frontdesk-app"


def _colour_word(m: dict[str, Any]) -> None:
    m["accentColor"] = "blue"


def _short_name_too_long(m: dict[str, Any]) -> None:
    m["name"]["short"] = "Frontdesk, the meeting room booker"


def _unknown_property(m: dict[str, Any]) -> None:
    m["frontdeskExtra"] = True


def _scopes_list_as_text(m: dict[str, Any]) -> None:
    m["bots"][0]["scopes"] = "personal"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_drop_developer, "developer:"),
        (_bot_id_number, "bots[0].botId:"),
        (_app_id_not_a_guid, "id:"),
        (_colour_word, "accentColor:"),
        (_short_name_too_long, "name.short:"),
        (_unknown_property, "frontdeskExtra:"),
        (_scopes_list_as_text, "bots[0].scopes:"),
    ],
)
def test_a_broken_template_is_refused_naming_the_field(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate, change: Any, field: str
) -> None:
    edit_template(change)
    output = tmp_path / "app.zip"

    with pytest.raises(PackageError) as raised:
        build_package(make_details(), output, sources)

    lines = str(raised.value).splitlines()
    assert lines[0] == "the manifest template does not give a valid package:"
    assert any(line.strip().startswith(field) for line in lines[1:]), str(raised.value)
    assert not output.exists()


def test_a_template_that_is_not_json_is_refused_with_the_line(
    tmp_path: Path, sources: Sources
) -> None:
    sources.template.write_text('{\n  "manifestVersion": "1.30",\n  oops\n}', encoding="utf-8")

    with pytest.raises(PackageError, match="not valid JSON at line 3"):
        build_package(make_details(), tmp_path / "app.zip", sources)


def test_an_unknown_placeholder_is_refused_naming_it_and_its_field(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    edit_template(lambda m: m["developer"].update(name="{{PUBLISHER}}"))

    with pytest.raises(
        PackageError, match=r"developer\.name: unknown placeholder \{\{PUBLISHER\}\}"
    ):
        build_package(make_details(), tmp_path / "app.zip", sources)


def test_a_schema_url_other_than_the_checked_version_is_refused(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    edit_template(lambda m: m.update({"$schema": SCHEMA_URL.replace("v1.30", "v1.29")}))

    with pytest.raises(PackageError, match=r"\$schema: must be https://"):
        build_package(make_details(), tmp_path / "app.zip", sources)


def test_a_manifest_version_other_than_the_schema_s_is_refused(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    edit_template(lambda m: m.update(manifestVersion="1.29"))

    with pytest.raises(PackageError, match="manifestVersion:"):
        build_package(make_details(), tmp_path / "app.zip", sources)


def test_a_bot_id_that_is_not_a_guid_is_refused(tmp_path: Path, sources: Sources) -> None:
    with pytest.raises(PackageError) as raised:
        build_package(make_details(bot_id="frontdesk-bot"), tmp_path / "app.zip", sources)

    message = str(raised.value)
    assert "bots[0].botId: 'frontdesk-bot' is not a GUID" in message
    assert "webApplicationInfo.id:" in message


def test_single_sign_on_must_match_the_bot_and_its_host(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    def change(m: dict[str, Any]) -> None:
        m["webApplicationInfo"]["resource"] = "api://elsewhere.example.com/botid-{{BOT_ID}}"
        m["validDomains"] = ["{{PUBLIC_HOSTNAME}}"]

    edit_template(change)

    with pytest.raises(PackageError) as raised:
        build_package(make_details(), tmp_path / "app.zip", sources)

    message = str(raised.value)
    assert "validDomains: must include elsewhere.example.com" in message
    assert "validDomains: must include token.botframework.com" in message


def test_a_notification_only_bot_is_refused(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    edit_template(lambda m: m["bots"][0].update(isNotificationOnly=True))

    with pytest.raises(PackageError, match=r"bots\[0\]\.isNotificationOnly: must be false"):
        build_package(make_details(), tmp_path / "app.zip", sources)


# Zips made by hand: what validate_package refuses.


@pytest.fixture
def good_files(tmp_path: Path, sources: Sources) -> dict[str, bytes]:
    return zip_contents(build_package(make_details(), tmp_path / "good.zip", sources).path)


def test_an_extra_file_in_the_zip_is_refused(
    tmp_path: Path, schema_file: Path, good_files: dict[str, bytes]
) -> None:
    package = write_zip(tmp_path / "app.zip", {**good_files, "README.txt": b"hello"})

    with pytest.raises(PackageError, match="also found README.txt"):
        validate_package(package, schema_file=schema_file)


def test_files_in_a_folder_are_refused(
    tmp_path: Path, schema_file: Path, good_files: dict[str, bytes]
) -> None:
    nested = {f"appPackage/{name}": data for name, data in good_files.items()}
    package = write_zip(tmp_path / "app.zip", nested)

    with pytest.raises(PackageError, match="no manifest.json at the root of the zip"):
        validate_package(package, schema_file=schema_file)


def test_an_icon_the_manifest_names_must_be_in_the_zip(
    tmp_path: Path, schema_file: Path, good_files: dict[str, bytes]
) -> None:
    del good_files["outline.png"]
    package = write_zip(tmp_path / "app.zip", good_files)

    with pytest.raises(PackageError, match=r"icons\.outline: 'outline.png' is not in the zip"):
        validate_package(package, schema_file=schema_file)


def test_an_icon_swapped_for_the_other_is_refused(
    tmp_path: Path, schema_file: Path, good_files: dict[str, bytes]
) -> None:
    swapped = {
        **good_files,
        "color.png": good_files["outline.png"],
        "outline.png": good_files["color.png"],
    }
    package = write_zip(tmp_path / "app.zip", swapped)

    with pytest.raises(PackageError) as raised:
        validate_package(package, schema_file=schema_file)

    message = str(raised.value)
    assert "the color icon must be 192x192 pixels, not 32x32" in message
    assert "the outline icon must be 32x32 pixels, not 192x192" in message


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path, schema_file: Path) -> None:
    package = tmp_path / "app.zip"
    package.write_bytes(b"not a zip")

    with pytest.raises(PackageError, match="not a zip file"):
        validate_package(package, schema_file=schema_file)


def test_a_missing_schema_says_to_run_make_node(tmp_path: Path, sources: Sources) -> None:
    moved = Sources(
        template=sources.template,
        color_icon=sources.color_icon,
        outline_icon=sources.outline_icon,
        version_file=sources.version_file,
        schema=tmp_path / "nowhere" / "MicrosoftTeams.schema.json",
    )

    with pytest.raises(PackageError, match="run `make node`"):
        build_package(make_details(), tmp_path / "app.zip", moved)


# The version follows the content.


def test_the_same_content_keeps_its_version(tmp_path: Path, sources: Sources) -> None:
    before = sources.version_file.read_text(encoding="utf-8")
    recorded = read_version(sources.version_file)
    assert recorded is not None

    first = build_package(make_details(), tmp_path / "one.zip", sources)
    second = build_package(make_details(online_meetings=True), tmp_path / "two.zip", sources)

    assert first.version == second.version == recorded[0]
    assert (first.previous_version, second.previous_version) == (None, None)
    assert sources.version_file.read_text(encoding="utf-8") == before


def test_other_settings_do_not_change_the_version(tmp_path: Path, sources: Sources) -> None:
    first = build_package(make_details(), tmp_path / "one.zip", sources)
    second = build_package(
        make_details(public_hostname="rooms.fabrikam.com"), tmp_path / "two.zip", sources
    )

    assert first.version == second.version


def test_changed_content_bumps_the_patch_once(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    recorded = read_version(sources.version_file)
    assert recorded is not None
    major, minor, patch = (int(part) for part in recorded[0].split("."))
    edit_template(lambda m: m["description"].update(short="Book a meeting room from Teams."))

    bumped = build_package(make_details(), tmp_path / "one.zip", sources)
    again = build_package(make_details(), tmp_path / "two.zip", sources)

    assert bumped.version == f"{major}.{minor}.{patch + 1}"
    assert bumped.previous_version == recorded[0]
    assert bumped.manifest["version"] == bumped.version
    assert (again.version, again.previous_version) == (bumped.version, None)
    state = read_version(sources.version_file)
    assert state is not None and state[0] == bumped.version


def test_a_changed_icon_bumps_the_version(tmp_path: Path, sources: Sources) -> None:
    from manifest.icons import ACCENT, render
    from manifest.png import encode_rgba

    recorded = read_version(sources.version_file)
    assert recorded is not None
    plain = render(192, [], (*ACCENT, 255))
    sources.color_icon.write_bytes(encode_rgba(192, 192, plain))

    result = build_package(make_details(), tmp_path / "app.zip", sources)

    assert result.previous_version == recorded[0]
    assert result.version != recorded[0]


def test_a_refused_build_does_not_bump_the_version(
    tmp_path: Path, sources: Sources, edit_template: EditTemplate
) -> None:
    before = sources.version_file.read_text(encoding="utf-8")
    edit_template(lambda m: m.update(accentColor="blue"))

    with pytest.raises(PackageError):
        build_package(make_details(), tmp_path / "app.zip", sources)

    assert sources.version_file.read_text(encoding="utf-8") == before


def test_a_first_build_starts_at_1_0_0(tmp_path: Path, sources: Sources) -> None:
    sources.version_file.unlink()

    result = build_package(make_details(), tmp_path / "app.zip", sources)

    assert result.version == "1.0.0"
    assert read_version(sources.version_file) == ("1.0.0", _committed_hash())


def _committed_hash() -> str:
    return content_hash(
        load_template(TEMPLATE_FILE), COLOR_ICON_FILE.read_bytes(), OUTLINE_ICON_FILE.read_bytes()
    )


def test_the_committed_version_matches_the_package_content() -> None:
    recorded = read_version(VERSION_FILE)

    assert recorded is not None, f"{VERSION_FILE} is missing"
    assert recorded[1] == _committed_hash(), (
        "the template, icons or commands changed since manifest/version.json was written: run "
        "`python -m manifest.build --update-version` and commit manifest/version.json"
    )
