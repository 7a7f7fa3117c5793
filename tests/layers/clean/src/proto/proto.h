/* proto includes nothing of src/ */
