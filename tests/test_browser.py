"""A real browser (Debian's headless Chromium via selenium) reviews a post on the running admin app."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from hashtale.db.reviews import Closeness, Review, ReviewState, ReviewStateChange
from tests.support.admin import PASSWORD, add_admin, add_post

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = "--window-size=1366,768"  # a laptop screen
WAIT = 20  # seconds for a page or an image on a loaded machine
STORY = "The cup was warm and the morning was quiet."


@pytest.fixture
def server(app):
    """The app served by a real HTTP server on a free port, in a thread."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    thread.join()


@pytest.fixture
def browser(tmp_path):
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium and chromium-driver (scripts/install.sh --test)")
        pytest.skip("chromium/chromedriver not installed: scripts/install.sh --test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [WINDOW, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reviewer_reviews_a_post_in_the_browser(server, browser, sessions, tmp_path, coffee_jpeg):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with sessions.begin() as session:
        add_admin(session, "ann")
        post_id = add_post(session, tmp_path / "media", coffee_jpeg, 1, ["coffee", "cup", "food"], story=STORY).id
    wait = WebDriverWait(browser, WAIT)

    # Any admin page sends us to the log-in form first, and back after it.
    browser.get(f"{server}/admin/posts/{post_id}")
    wait.until(ec.presence_of_element_located((By.NAME, "username")))
    assert browser.switch_to.active_element.get_attribute("name") == "username"  # autofocus
    browser.switch_to.active_element.send_keys("ann", Keys.TAB, PASSWORD, Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.ID, "review-form")))
    assert browser.current_url == f"{server}/admin/posts/{post_id}"

    # The photo and one heat map per hashtag have loaded; hashtags, scores and the story are shown.
    def loaded(image) -> bool:
        return browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image)

    photo = browser.find_element(By.ID, "photo")
    heatmaps = browser.find_elements(By.CSS_SELECTOR, "img.heatmap")
    assert len(heatmaps) == 3
    wait.until(lambda _: all(loaded(img) for img in [photo, *heatmaps]))
    # One heat map at a time lies over the photo, exactly covering it: #coffee's first, then the hovered tag's.
    assert [h.is_displayed() for h in heatmaps] == [True, False, False]
    assert heatmaps[0].rect == photo.rect
    from selenium.webdriver.common.action_chains import ActionChains
    ActionChains(browser).move_to_element(browser.find_elements(By.CSS_SELECTOR, ".hashtag")[1]).perform()
    assert [h.is_displayed() for h in heatmaps] == [False, True, False] and heatmaps[1].rect == photo.rect
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".tagtext")] == ["#coffee", "#cup", "#food"]
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".hashtag .score")] == ["0.900", "0.450", "0.300"]
    assert browser.find_element(By.ID, "story").text == STORY
    assert photo.is_displayed() and photo.size["width"] > 300  # usable on a laptop screen

    # Keyboard: 1 and 3 tick hashtags, y answers "relevant"; then the story questions, a note, Approve.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("1", "3", "y")
    browser.find_element(By.CSS_SELECTOR, "input[name=story_meaningful][value=yes]").click()
    browser.find_element(By.CSS_SELECTOR, "input[name=story_closeness][value=slight]").click()
    browser.find_element(By.NAME, "note").send_keys("saucer missing from the tags")
    browser.find_element(By.NAME, "approve").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Saved review revision 1"))
    assert browser.find_element(By.ID, "review-state").text == "approved"

    with sessions() as session:
        review = session.scalars(select(Review)).one()
        assert (review.reviewer.username, review.revision, review.hashtag_relevant, review.story_meaningful,
                review.story_closeness, review.note) == ("ann", 1, True, True, Closeness.SLIGHT,
                                                         "saucer missing from the tags")
        assert [(v.text, v.relevant) for v in review.verdicts] == [("coffee", True), ("cup", False), ("food", True)]
        state = session.scalars(select(ReviewStateChange)).one()
        assert (state.state, state.review_id) == (ReviewState.APPROVED, review.id)
    browser.save_screenshot(str(tmp_path / "post.png"))
